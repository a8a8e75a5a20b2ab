// functiond flow prelude: runs once per slot (QuickJS runtime), before any flow code.
//
// It defines the flow globals on top of four native functions, then hardens the realm so that a
// run cannot leave anything behind for the next run on the same slot:
//   1. remove what could call back into a later run (WeakRef, FinalizationRegistry);
//   2. turn a few prototype properties that scripts commonly shadow by assignment (`this.name = ..`
//      in an Error subclass, `Foo.prototype.constructor = Foo`, `obj.toString = ..`) into
//      accessors, so that freezing their prototype does not make those assignments throw (the
//      "override mistake"); the setter defines an own property on the receiver instead;
//   3. freeze every object reachable from globalThis and from the hidden intrinsics (iterator,
//      generator and async-function prototypes, ...), then globalThis itself, so that in strict
//      mode any write to a shared object throws instead of persisting.
// It returns the private helpers Rust needs; none of them is reachable from flow code.
(function (native) {
  "use strict";
  const { sink, hostCall, respond, envGet } = native;
  const G = globalThis;
  const O = Object;
  const { defineProperty, getOwnPropertyDescriptor, getPrototypeOf, freeze, keys } = O;
  const ownKeys = Reflect.ownKeys;
  const isArray = Array.isArray;
  const isInteger = Number.isInteger;
  const stringify = JSON.stringify;
  const Str = String;
  const ErrorCtor = Error;
  const TypeErr = TypeError;
  const indirectEval = eval;

  // ---- formatting (console, errors) ----
  const describe = (e) => {
    try {
      if (e instanceof ErrorCtor) {
        let name = "Error";
        let message = "";
        let stack;
        try { name = Str(e.name); } catch (_) { /* keep default */ }
        try { message = Str(e.message); } catch (_) { /* keep default */ }
        try { if (typeof e.stack === "string") stack = e.stack; } catch (_) { /* none */ }
        const head = message === "" ? name : (name === "" ? message : name + ": " + message);
        return [head, stack];
      }
      if (typeof e === "string") return [e, undefined];
      return [fmtOne(e), undefined];
    } catch (_) {
      return ["(unprintable exception)", undefined];
    }
  };

  const fmtOne = (v) => {
    try {
      switch (typeof v) {
        case "string": return v;
        case "undefined": return "undefined";
        case "function": return v.name ? "[Function: " + Str(v.name) + "]" : "[Function (anonymous)]";
        case "object": {
          if (v === null) return "null";
          if (v instanceof ErrorCtor) {
            const d = describe(v);
            return d[1] ? d[0] + "\n" + d[1] : d[0];
          }
          let j;
          try { j = stringify(v); } catch (_) { j = undefined; }
          return j === undefined ? Str(v) : j;
        }
        default: return Str(v);
      }
    } catch (_) {
      return "[unprintable]";
    }
  };

  const logger = (level) => function (...args) {
    let s = "";
    for (let i = 0; i < args.length; i++) {
      if (i > 0) s += " ";
      s += fmtOne(args[i]);
    }
    sink(level, s.toWellFormed());
  };
  const console = {
    debug: logger(0), log: logger(1), info: logger(2), warn: logger(3), error: logger(4),
  };

  // ---- activities ----
  const needString = (v, what) => {
    if (typeof v !== "string") throw new TypeErr(what + " must be a string");
  };
  const params = (p, what) => {
    if (p === undefined || p === null) return "[]";
    if (!isArray(p)) throw new TypeErr(what + ": params must be an array");
    return stringify(p);
  };
  const db = {
    query: async function query(sql, p) {
      needString(sql, "db.query: sql");
      return hostCall(0, sql.toWellFormed(), params(p, "db.query"));
    },
    execute: async function execute(sql, p) {
      needString(sql, "db.execute: sql");
      return hostCall(1, sql.toWellFormed(), params(p, "db.execute"));
    },
  };
  const http = {
    request: async function request(req) {
      if (req === null || typeof req !== "object" || isArray(req)) {
        throw new TypeErr("http.request expects an object { url, method, headers, body, timeout_ms }");
      }
      needString(req.url, "http.request: url");
      return hostCall(2, stringify(req), "");
    },
  };
  const emit = async function emit(type, data) {
    needString(type, "emit: type");
    if (type === "") throw new TypeErr("emit: type must not be empty");
    const j = data === undefined ? "null" : stringify(data);
    if (j === undefined) throw new TypeErr("emit: data must be JSON-serializable");
    return hostCall(3, type.toWellFormed(), j);
  };
  const env = function env(name) {
    return typeof name === "string" ? envGet(name) : undefined;
  };

  // ---- the response ----
  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const VALUE = /^[\t\x20-\x7e]*$/;
  const setWebhookResponse = function setWebhookResponse(r) {
    if (r === null || typeof r !== "object" || isArray(r)) {
      throw new TypeErr("setWebhookResponse expects an object { status, body, headers }");
    }
    const status = r.status === undefined ? 200 : r.status;
    if (typeof status !== "number" || !isInteger(status) || status < 100 || status > 599) {
      throw new TypeErr("setWebhookResponse: status must be an integer from 100 to 599, got " + fmtOne(status));
    }
    const flat = [];
    const h = r.headers;
    if (h !== undefined && h !== null) {
      if (typeof h !== "object" || isArray(h)) {
        throw new TypeErr("setWebhookResponse: headers must be an object of name: value");
      }
      const names = keys(h);
      for (let i = 0; i < names.length; i++) {
        const k = names[i];
        let v = h[k];
        if (typeof v === "number" || typeof v === "boolean") v = Str(v);
        if (typeof v !== "string") {
          throw new TypeErr("setWebhookResponse: header " + stringify(k) + " must have a string value");
        }
        if (!TOKEN.test(k)) throw new TypeErr("setWebhookResponse: invalid header name " + stringify(k));
        if (!VALUE.test(v)) {
          throw new TypeErr("setWebhookResponse: invalid value for header " + stringify(k) +
            " (only printable ASCII and tab are allowed)");
        }
        flat.push(k, v);
      }
    }
    const b = r.body;
    let kind = 0;
    let text = "";
    if (typeof b === "string") {
      kind = 1;
      text = b.toWellFormed();
    } else if (b !== undefined) {
      const j = stringify(b);
      if (j === undefined) throw new TypeErr("setWebhookResponse: body is not JSON-serializable");
      kind = 2;
      text = j;
    }
    respond(status, flat, kind, text);
  };

  // ---- install ----
  const def = (k, v) => defineProperty(G, k, { value: v, writable: false, enumerable: false, configurable: false });
  def("console", console);
  def("db", db);
  def("http", http);
  def("emit", emit);
  def("env", env);
  def("setWebhookResponse", setWebhookResponse);
  delete G.WeakRef;
  delete G.FinalizationRegistry;

  // ---- harden ----
  // Setters that only ever write to their receiver are safe on a frozen prototype; any other
  // setter on a shared object may write hidden realm state (QuickJS's Error.stackTraceLimit and
  // Error.prepareStackTrace do), so the walk below pins such a property to its current value.
  const safeSetters = new Set();
  const allowSetter = (obj, key) => {
    const d = obj ? getOwnPropertyDescriptor(obj, key) : undefined;
    if (d && d.set) safeSetters.add(d.set);
  };
  allowSetter(O.prototype, "__proto__");
  allowSetter(ErrorCtor.prototype, "stack");
  allowSetter(Function.prototype, "caller"); // %ThrowTypeError%
  allowSetter(Function.prototype, "arguments");
  allowSetter(G.Iterator && G.Iterator.prototype, Symbol.toStringTag);
  allowSetter(G.Iterator && G.Iterator.prototype, "constructor");

  const tame = (obj, key) => {
    const d = getOwnPropertyDescriptor(obj, key);
    if (!d || !("value" in d) || !d.configurable) return;
    const value = d.value;
    const set = function (v) {
      if (this === obj) throw new TypeErr("Cannot assign to read only property '" + Str(key) + "' of a shared prototype");
      defineProperty(this, key, { value: v, writable: true, enumerable: true, configurable: true });
    };
    safeSetters.add(set);
    defineProperty(obj, key, {
      configurable: false,
      enumerable: d.enumerable,
      get: function () { return value; },
      set,
    });
  };
  const tameAll = (obj, names) => { for (const n of names) tame(obj, n); };
  tameAll(O.prototype, ["constructor", "toString", "toLocaleString", "valueOf", "hasOwnProperty"]);
  tameAll(Function.prototype, ["constructor", "toString"]);
  for (const C of [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError,
    G.AggregateError, G.SuppressedError]) {
    if (typeof C === "function") tameAll(C.prototype, ["constructor", "name", "message", "toString"]);
  }

  const roots = [G];
  const sample = (f) => { try { roots.push(f()); } catch (_) { /* not supported here */ } };
  sample(() => async function () {});
  sample(() => function* () {});
  sample(() => async function* () {});
  sample(() => (function* () {})());
  sample(() => (async function* () {})());
  sample(() => [][Symbol.iterator]());
  sample(() => new Map()[Symbol.iterator]());
  sample(() => new Set()[Symbol.iterator]());
  sample(() => ""[Symbol.iterator]());
  sample(() => /a/[Symbol.matchAll](""));
  sample(() => [].values().map((x) => x));
  sample(() => G.Iterator.from({ next() { return { done: true }; } }));
  sample(() => (function () { return arguments; })());
  sample(() => Promise.resolve());
  const seen = new Set();
  const queue = roots;
  while (queue.length > 0) {
    const o = queue.pop();
    if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.has(o)) continue;
    seen.add(o);
    queue.push(getPrototypeOf(o));
    for (const k of ownKeys(o)) {
      let d = getOwnPropertyDescriptor(o, k);
      if (d === undefined) continue;
      if (d.set !== undefined && !safeSetters.has(d.set)) {
        if (!d.configurable) throw new TypeErr("functiond: cannot pin " + Str(k));
        const value = d.get ? d.get.call(o) : undefined;
        defineProperty(o, k, { value, writable: false, enumerable: d.enumerable, configurable: false });
        d = getOwnPropertyDescriptor(o, k);
      }
      if ("value" in d) queue.push(d.value);
      else { queue.push(d.get); queue.push(d.set); }
    }
    freeze(o);
  }
  if (!O.isFrozen(G)) throw new TypeErr("functiond: globalThis could not be frozen");

  return {
    compile: (src) => indirectEval(src),
    describe,
  };
})
