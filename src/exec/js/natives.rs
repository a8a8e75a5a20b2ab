//! The native half of the prelude: four Rust functions handed to `prelude.js`, which wraps,
//! validates and freezes them into the flow globals.
//!
//! They never call back into JavaScript and hold the `RunState` borrow only briefly, so no
//! re-entrancy is possible. Activity calls only *create* the host future here; the worker polls
//! it (on the caller's tokio runtime) and settles the promise later.

use std::cell::RefCell;
use std::rc::Rc;

use rquickjs::{Ctx, Exception, Function, Object, Persistent, Promise};

use super::state::{HostFuture, Resolvers, RunState};
use super::{ConsoleLevel, FlowBody, FlowResponse};

const PRELUDE: &str = include_str!("prelude.js");

/// Private helpers returned by the prelude; never reachable from flow code.
pub(crate) struct Internals {
    /// `compile(src)`: strict indirect eval of the wrapped script; returns the flow function.
    pub(crate) compile: Persistent<Function<'static>>,
    /// `describe(e)`: `[message, stack | undefined]` for any thrown value.
    pub(crate) describe: Persistent<Function<'static>>,
}

/// Defines the flow globals and hardens the context. Runs once per slot.
pub(crate) fn install<'js>(
    ctx: &Ctx<'js>,
    state: &Rc<RefCell<RunState>>,
) -> rquickjs::Result<Internals> {
    let natives = Object::new(ctx.clone())?;

    let st = state.clone();
    let sink = move |level: i32, text: rquickjs::String<'js>| {
        let level = match level {
            0 => ConsoleLevel::Debug,
            2 => ConsoleLevel::Info,
            3 => ConsoleLevel::Warn,
            4 => ConsoleLevel::Error,
            _ => ConsoleLevel::Log,
        };
        st.borrow_mut().log(level, js_text(&text));
    };
    natives.set("sink", Function::new(ctx.clone(), sink)?)?;

    let st = state.clone();
    let env_get = move |name: rquickjs::String<'js>| -> Option<String> {
        let name = name.to_string().ok()?;
        st.borrow().env_value(&name)
    };
    natives.set("envGet", Function::new(ctx.clone(), env_get)?)?;

    let st = state.clone();
    let respond = move |status: i32,
                        flat: Vec<rquickjs::String<'js>>,
                        kind: i32,
                        text: rquickjs::String<'js>| {
        let status = u16::try_from(status).unwrap_or(500);
        let mut headers = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            headers.push((js_text(k), js_text(v)));
        }
        let body = match kind {
            1 => FlowBody::Text(js_text(&text)),
            2 => FlowBody::Json(js_text(&text)),
            _ => FlowBody::Empty,
        };
        st.borrow_mut().response = Some(FlowResponse {
            status,
            headers,
            body,
        });
    };
    natives.set("respond", Function::new(ctx.clone(), respond)?)?;

    let st = state.clone();
    let host_call = move |ctx: Ctx<'js>,
                          kind: i32,
                          a: rquickjs::String<'js>,
                          b: rquickjs::String<'js>|
          -> rquickjs::Result<Promise<'js>> {
        let host = st.borrow().host.clone();
        let Some(host) = host else {
            return Err(Exception::throw_internal(
                &ctx,
                "no activity host for this run",
            ));
        };
        let (a, b) = (js_text(&a), js_text(&b));
        let future: HostFuture = match kind {
            0 => {
                let fut = host.db_query(a, json_list(&ctx, &b)?);
                Box::pin(async move { to_text(&fut.await?) })
            }
            1 => {
                let fut = host.db_execute(a, json_list(&ctx, &b)?);
                Box::pin(async move { Ok(format!("{{\"rows_affected\":{}}}", fut.await?)) })
            }
            2 => {
                let fut = host.http_request(json_value(&ctx, &a)?);
                Box::pin(async move { to_text(&fut.await?) })
            }
            3 => {
                let fut = host.emit(a, json_value(&ctx, &b)?);
                Box::pin(async move { to_text(&fut.await?) })
            }
            _ => return Err(Exception::throw_internal(&ctx, "unknown activity")),
        };
        let (promise, resolve, reject) = ctx.promise()?;
        let resolvers = Resolvers {
            resolve: Persistent::save(&ctx, resolve),
            reject: Persistent::save(&ctx, reject),
        };
        match st.borrow_mut().add_call(resolvers, future) {
            Some(_) => Ok(promise),
            None => Err(Exception::throw_range(
                &ctx,
                "too many activities pending in this run",
            )),
        }
    };
    natives.set("hostCall", Function::new(ctx.clone(), host_call)?)?;

    let mut options = rquickjs::context::EvalOptions::default();
    options.filename = Some("functiond:prelude".into());
    let prelude: Function = ctx.eval_with_options(PRELUDE, options)?;
    let internals: Object = prelude.call((natives,))?;
    let compile: Function = internals.get("compile")?;
    let describe: Function = internals.get("describe")?;
    Ok(Internals {
        compile: Persistent::save(ctx, compile),
        describe: Persistent::save(ctx, describe),
    })
}

/// A JavaScript string as Rust text. The prelude passes well-formed strings only (lone
/// surrogates would not convert); anything else is a bug, reported as a replacement character.
pub(crate) fn js_text(s: &rquickjs::String<'_>) -> String {
    s.to_string().unwrap_or_else(|_| "\u{FFFD}".to_string())
}

fn json_value(ctx: &Ctx<'_>, text: &str) -> rquickjs::Result<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| Exception::throw_type(ctx, &format!("invalid JSON: {e}")))
}

fn json_list(ctx: &Ctx<'_>, text: &str) -> rquickjs::Result<Vec<serde_json::Value>> {
    serde_json::from_str(text)
        .map_err(|e| Exception::throw_type(ctx, &format!("invalid parameters: {e}")))
}

fn to_text<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("result is not JSON: {e}"))
}
