//! The script text around QuickJS: how a flow is wrapped into a function, how stack positions
//! are mapped back to the script, and a syntax check for loading.
//!
//! A flow becomes `(async function (<global names>) {"use strict";<script>\n})`, evaluated by a
//! strict indirect `eval` (so top-level `await` and `return` work, and nothing the text declares
//! outside the function can outlive the evaluation). The script starts on the wrapper's first
//! line, so line numbers match the file; columns on line 1 are shifted back by the wrapper.

use std::time::{Duration, Instant};

use rquickjs::{Context, Function, Runtime};

/// Makes the flow's indirect eval strict too (so it cannot declare anything outside itself).
pub(crate) const COMPILE_PREFIX: &str = "\"use strict\";";

/// Rewrites QuickJS's name for eval'd code (`<input>:line:column`) to `flow:line:column`, with
/// columns on the first line counted from the script's first character.
pub(crate) fn relocate(stack: &str, prefix_len: usize) -> String {
    const EVAL_NAME: &str = "<input>:";
    let mut out = String::with_capacity(stack.len());
    let mut rest = stack;
    while let Some(i) = rest.find(EVAL_NAME) {
        out.push_str(&rest[..i]);
        out.push_str("flow:");
        rest = &rest[i + EVAL_NAME.len()..];
        let line_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let line = &rest[..line_end];
        out.push_str(line);
        rest = &rest[line_end..];
        if line == "1" && rest.starts_with(':') {
            let col_end = rest[1..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(rest.len(), |j| j + 1);
            if let Ok(col) = rest[1..col_end].parse::<usize>() {
                out.push_str(&format!(":{}", col.saturating_sub(prefix_len).max(1)));
                rest = &rest[col_end..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The flow function's source: parameters are the global names. The script starts on the
/// first line, so its line numbers are kept in stack traces.
pub(crate) fn wrap(params: &[String], source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 64);
    out.push_str(WRAP_OPEN);
    out.push_str(&params.join(", "));
    out.push_str(WRAP_BODY);
    out.push_str(source);
    out.push_str("\n})");
    out
}

const WRAP_OPEN: &str = "(async function (";
const WRAP_BODY: &str = ") {\"use strict\";";

/// `wrap(params, "")` up to the script, without building it.
pub(crate) fn wrap_prefix_len(params: &[String]) -> usize {
    let names: usize = params.iter().map(String::len).sum();
    WRAP_OPEN.len() + names + 2 * params.len().saturating_sub(1) + WRAP_BODY.len()
}

/// Checks that `source` compiles as a flow (strict mode, top-level `await` allowed) without
/// running it; `Err` has the syntax error. Builds a throw-away runtime (about a millisecond):
/// for loading and `functiond check`, not for the request path.
pub fn check_syntax(source: &str) -> Result<(), String> {
    let rt = Runtime::new().map_err(|e| e.to_string())?;
    rt.set_memory_limit(64 << 20);
    let deadline = Instant::now() + Duration::from_secs(2);
    rt.set_interrupt_handler(Some(Box::new(move || Instant::now() >= deadline)));
    let ctx = Context::full(&rt).map_err(|e| e.to_string())?;
    ctx.with(|ctx| {
        // Wrapped in a function that is never called: the script is parsed, not run (unless it
        // breaks out of the wrapper, and then only here, under a deadline).
        let wrapped = format!("(function () {{ return {}; }})", wrap(&[], source));
        match ctx.eval::<Function, _>(wrapped) {
            Ok(_) => Ok(()),
            Err(rquickjs::Error::Exception) => {
                let e = ctx.catch();
                Err(e
                    .as_exception()
                    .and_then(|x| x.message())
                    .unwrap_or_else(|| "syntax error".into()))
            }
            Err(e) => Err(e.to_string()),
        }
    })
}

#[cfg(test)]
mod relocate_tests {
    use super::*;

    #[test]
    fn stack_positions_are_relative_to_the_script() {
        let params = vec!["METHOD".to_string(), "BODY".to_string()];
        let prefix = COMPILE_PREFIX.len() + wrap_prefix_len(&params);
        assert_eq!(
            prefix,
            COMPILE_PREFIX.len() + wrap(&params, "").len() - "\n})".len()
        );
        let stack = format!(
            "    at f (<input>:1:{})\n    at <anonymous> (<input>:12:3)\n",
            prefix + 5
        );
        assert_eq!(
            relocate(&stack, prefix),
            "    at f (flow:1:5)\n    at <anonymous> (flow:12:3)\n"
        );
        assert_eq!(
            relocate("    at <input>:2:9\n", prefix),
            "    at flow:2:9\n"
        );
        assert_eq!(relocate("no frames", prefix), "no frames");
        assert_eq!(relocate("<input>:", prefix), "flow:");
        assert_eq!(relocate("<input>:1:", prefix), "flow:1:");
    }
}
