//! One run cannot leave state for the next: escape attempts on the same slot (one worker, runs
//! one after another, so the same QuickJS context serves all of them).

use serde_json::json;

use super::*;

/// Each line tries to leave something behind; every attempt runs in its own try/catch.
const ATTEMPTS: &[&str] = &[
    "globalThis.leak1 = 1",
    "leak2 = 1",
    "Object.defineProperty(globalThis, 'leak3', { value: 1 })",
    "Reflect.set(globalThis, 'leak4', 1) || (() => { throw 0; })()",
    "(0, eval)('var leak5 = 1')",
    "(0, eval)('globalThis.leak6 = 1')",
    "Function('leak7 = 1')()",
    "Function('return this')().leak8 = 1",
    "Array.prototype.x = 1",
    "Object.prototype.polluted = 1",
    "({}).__proto__.polluted2 = 1",
    "Object.assign(Object.getPrototypeOf({}), { polluted3: 1 })",
    "JSON.parse = () => 'hijacked'",
    "JSON.stringify = () => 'hijacked'",
    "Object.prototype.toString = () => 'hijacked'",
    "Function.prototype.call = () => 'hijacked'",
    "Promise.prototype.then = () => 'hijacked'",
    "Math.random = () => 4",
    "Date.now = () => 0",
    "String.prototype.trim = () => 'hijacked'",
    "Array.prototype[Symbol.iterator] = function* () { yield 'hijacked'; }",
    "delete Array.prototype.map",
    "Object.setPrototypeOf(Array.prototype, null)",
    "Object.prototype.__defineGetter__('getterLeak', () => 1)",
    "Error.prototype.toString = () => 'hijacked'",
    "Error.stackTraceLimit = 0",
    "Error.prepareStackTrace = () => 'hijacked'",
    "Object.getOwnPropertyDescriptor(Error, 'stackTraceLimit').set.call(Error, 0)",
    "Object.getOwnPropertyDescriptor(Error, 'prepareStackTrace').set.call(Error, () => 'x')",
    "Object.getOwnPropertyDescriptor(Object.prototype, '__proto__').set.call(Array.prototype, null)",
    "Object.getOwnPropertyDescriptor(Error.prototype, 'stack').set.call(Error.prototype, 'x')",
    "Object.getOwnPropertyDescriptor(Object.prototype, 'toString').set.call(Object.prototype, 1)",
    "Map.prototype.set = () => 'hijacked'",
    "Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())).leak = 1",
    "Object.getPrototypeOf([][Symbol.iterator]()).next = () => ({ done: true })",
    "Object.getPrototypeOf(async function () {}).leak = 1",
    "Object.getPrototypeOf(function* () {}).prototype.leak = 1",
    "Object.getPrototypeOf(Int8Array).prototype.leak = 1",
    "console.log = () => {}",
    "console.leak = 1",
    "db.query = async () => [{ hijacked: true }]",
    "setWebhookResponse.leak = 1",
    "env.leak = 1",
    "globalThis.__proto__.leak9 = 1",
    "Symbol.prototype.leak = 1",
    "RegExp.prototype.exec = () => null",
    "/(sec)ret/.exec('secret')",
    "Object.freeze = (o) => o",
    "(async () => {}).constructor.prototype.leak = 1",
    "Object.getPrototypeOf(Promise.resolve()).leak = 1",
    "Reflect.defineProperty = () => true",
    "Object.defineProperty(Object.prototype, 'toJSON', { value: () => 'hijacked' })",
    "arguments.callee.leak = 1",
];

const CHECKS: &str = r#"
const bad = [];
const check = (name, ok) => { try { if (!ok()) bad.push(name); } catch (e) { bad.push(name + ': ' + e); } };
for (const n of ["leak1", "leak2", "leak3", "leak4", "leak5", "leak6", "leak7", "leak8", "leak9"]) {
  check(n, () => !(n in globalThis));
}
check("Array.prototype.x", () => [].x === undefined);
check("polluted", () => ({}).polluted === undefined && ({}).polluted2 === undefined && ({}).polluted3 === undefined);
check("JSON.parse", () => JSON.parse('{"a":1}').a === 1);
check("JSON.stringify", () => JSON.stringify({ a: 1 }) === '{"a":1}');
check("toString", () => Object.prototype.toString.call([]) === "[object Array]" && String({}) === "[object Object]");
check("call", () => Math.max.call(null, 1, 2) === 2);
check("then", () => typeof Promise.resolve().then(() => 1).then === "function");
check("random", () => Math.random() < 1);
check("Date.now", () => Date.now() > 0);
check("trim", () => " a ".trim() === "a");
check("iterator", () => [...[1, 2]].join() === "1,2");
check("map", () => [1].map((x) => x + 1)[0] === 2);
check("proto", () => Object.getPrototypeOf(Array.prototype) === Object.prototype);
check("getterLeak", () => ({}).getterLeak === undefined);
check("Error.toString", () => String(new Error("m")) === "Error: m");
check("stack", () => Error.stackTraceLimit === 10 && Error.prepareStackTrace === undefined && new Error("x").stack.includes("    at "));
check("Map.set", () => new Map().set(1, 2).get(1) === 2);
check("iterator proto", () => Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())).leak === undefined);
check("array iterator next", () => [1][Symbol.iterator]().next().value === 1);
check("async fn proto", () => Object.getPrototypeOf(async function () {}).leak === undefined);
check("generator proto", () => Object.getPrototypeOf(function* () {}).prototype.leak === undefined);
check("typed array proto", () => new Int8Array(1).leak === undefined);
check("console", () => console.leak === undefined && String(console.log).indexOf("hijack") < 0);
check("db", () => db.query.toString().indexOf("hijacked") < 0);
check("setWebhookResponse", () => setWebhookResponse.leak === undefined && env.leak === undefined);
check("Symbol", () => Symbol().leak === undefined);
check("RegExp.exec", () => /a/.exec("a")[0] === "a");
check("RegExp statics", () => RegExp.$1 === undefined && RegExp.lastMatch === undefined);
check("freeze", () => Object.isFrozen(Object.freeze({})));
check("promise proto", () => Promise.resolve().leak === undefined);
check("Reflect.defineProperty", () => Reflect.defineProperty({}, "a", { value: 1 }) === true);
check("toJSON", () => JSON.stringify({ a: 1 }) === '{"a":1}');
check("weak refs", () => typeof WeakRef === "undefined" && typeof FinalizationRegistry === "undefined");
check("frozen global", () => Object.isFrozen(globalThis));
setWebhookResponse({ body: bad });
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_attempts_do_not_reach_the_next_run() {
    let p = pool(1, 4);
    // Baseline: the checks pass on a fresh slot.
    assert_eq!(body_json(&p.run(job(CHECKS)).await), json!([]));

    let mut attack = String::from("const done = [];\n");
    for (i, a) in ATTEMPTS.iter().enumerate() {
        attack.push_str(&format!("try {{ {a}; done.push({i}); }} catch (e) {{}}\n"));
    }
    attack.push_str("setWebhookResponse({ body: done });");
    let out = p.run(job(&attack)).await;
    assert_eq!(out.result, Ok(()));
    // Only these complete without an exception, and they touch nothing shared: sloppy code
    // (eval, Function) whose write to the frozen global fails silently, and a regex match.
    let succeeded: Vec<&str> = body_json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|i| ATTEMPTS[i.as_u64().unwrap() as usize])
        .collect();
    assert_eq!(
        succeeded,
        vec![
            "(0, eval)('globalThis.leak6 = 1')",
            "Function('leak7 = 1')()",
            "/(sec)ret/.exec('secret')",
        ]
    );
    assert_eq!(body_json(&p.run(job(CHECKS)).await), json!([]));

    // Each attempt alone, uncaught, then the checks on the same slot.
    for a in ATTEMPTS {
        let _ = p.run(job(a)).await;
        let out = p.run(job(CHECKS)).await;
        assert_eq!(body_json(&out), json!([]), "after `{a}`");
    }
    assert_eq!(p.stats().slots_built, 1, "all runs used one slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_the_same_script_share_nothing() {
    // Per-script objects the compiled function could cache between calls.
    let p = pool(1, 4);
    let src = r#"
        const tag = (s) => s;
        const strings = tag`x${1}y`;
        const re = /a/g;
        const before = { template: strings.leak, re: re.lastIndex, self: typeof this };
        try { strings.leak = 1; } catch (e) {}
        re.exec("aaa");
        let callee;
        try { callee = typeof arguments.callee; } catch (e) { callee = e.name; }
        setWebhookResponse({ body: { ...before, frozenTemplate: Object.isFrozen(strings), callee } });
    "#;
    let first = p.run(job(src)).await;
    let second = p.run(job(src)).await;
    let expected =
        json!({ "re": 0, "self": "undefined", "frozenTemplate": true, "callee": "TypeError" });
    assert_eq!(body_json(&first), expected);
    assert_eq!(body_json(&second), expected);
    assert_eq!(p.stats().compiles, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_writes_to_shared_objects_throw() {
    let p = pool(1, 4);
    for (src, name) in [
        ("globalThis.x = 1", "TypeError"),
        ("y = 1", "ReferenceError"),
        ("Array.prototype.x = 1", "TypeError"),
        ("JSON.parse = null", "TypeError"),
        ("Object.prototype.toString = null", "TypeError"),
    ] {
        let (message, _) = thrown(&p.run(job(src)).await);
        assert!(message.starts_with(name), "{src}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn common_patterns_still_work_on_frozen_intrinsics() {
    let p = pool(1, 4);
    let out = p
        .run(job(r#"
            class MyError extends Error { constructor(m) { super(m); this.name = "MyError"; } }
            function Old() {}
            Old.prototype = Object.create(Object.prototype);
            Old.prototype.constructor = Old;
            Old.prototype.toString = function () { return "old"; };
            const o = { a: 1 };
            o.toString = () => "custom";
            o.valueOf = () => 41;
            o.constructor = "mine";
            const e = new Error("x"); e.message = "y";
            const m = new Map([[1, 2]]);
            const data = JSON.parse('{"__proto__": {"polluted": 1}, "k": [1, 2]}');
            const merged = Object.assign({}, data);
            setWebhookResponse({ body: {
                err: String(new MyError("boom")), old: String(new Old()), oldCtor: new Old().constructor === Old,
                custom: String(o), plus: o + 1, ctor: o.constructor, e: e.message,
                m: [...m.keys()], k: data.k, polluted: ({}).polluted === undefined,
                sorted: [3, 1, 2].sort(), json: JSON.stringify({ d: new Date(0) }),
            }});
        "#))
        .await;
    assert_eq!(out.result, Ok(()));
    assert_eq!(
        body_json(&out),
        json!({
            "err": "MyError: boom", "old": "old", "oldCtor": true, "custom": "custom", "plus": 42,
            "ctor": "mine", "e": "y", "m": [1], "k": [1, 2], "polluted": true, "sorted": [1, 2, 3],
            "json": r#"{"d":"1970-01-01T00:00:00.000Z"}"#,
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_queued_by_a_run_finish_in_that_run() {
    let p = pool(1, 4);
    let out = p
        .run(job("setWebhookResponse({}); queueMicrotask(() => console.log('late')); Promise.resolve().then(() => console.log('later'))"))
        .await;
    assert_eq!(console_text(&out), vec!["late", "later"]);
    let out = p.run(job("setWebhookResponse({ body: 1 })")).await;
    assert!(out.console.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_system_process_or_network() {
    let p = pool(1, 4);
    let out = p
        .run(job(r#"
            const names = ["require", "process", "std", "os", "fetch", "XMLHttpRequest", "WebSocket",
                           "Deno", "Bun", "module", "exports", "setTimeout", "scriptArgs", "print"];
            const present = names.filter((n) => typeof globalThis[n] !== "undefined");
            let imported = "no";
            try { await import("fs"); imported = "yes"; } catch (e) { imported = "rejected"; }
            setWebhookResponse({ body: { present, imported } });
        "#))
        .await;
    assert_eq!(
        body_json(&out),
        json!({ "present": [], "imported": "rejected" })
    );
}
