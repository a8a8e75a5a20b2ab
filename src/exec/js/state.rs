//! Per-run native state of a slot: what the native functions of the prelude read and write.
//!
//! It is shared (`Rc<RefCell<_>>`) between the slot and the native closures living inside the
//! QuickJS runtime, and reset at the start and end of every run, so nothing of one run is
//! visible to the next. It holds JavaScript values (promise resolvers) only while a run is in
//! flight; `clear` drops them, and must run before the runtime is freed.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use rquickjs::{Function, Persistent};

use super::{ConsoleLevel, ConsoleLine, FlowResponse, Host};

/// An activity's result: JSON text to resolve with, or a message to reject with.
pub(crate) type HostResult = Result<String, String>;
pub(crate) type HostFuture = BoxFuture<'static, HostResult>;

/// At most this many activities of one run may be pending at once.
pub(crate) const MAX_PENDING_CALLS: usize = 1024;

pub(crate) struct Resolvers {
    pub(crate) resolve: Persistent<Function<'static>>,
    pub(crate) reject: Persistent<Function<'static>>,
}

pub(crate) struct RunState {
    pub(crate) env: Vec<(String, String)>,
    pub(crate) host: Option<Arc<dyn Host>>,
    pub(crate) response: Option<FlowResponse>,
    console: Vec<ConsoleLine>,
    console_bytes: usize,
    console_limit: usize,
    truncated: bool,
    next_call: u64,
    pub(crate) resolvers: HashMap<u64, Resolvers>,
    pub(crate) new_calls: Vec<(u64, HostFuture)>,
}

impl RunState {
    pub(crate) fn new(console_limit: usize) -> Self {
        Self {
            env: Vec::new(),
            host: None,
            response: None,
            console: Vec::new(),
            console_bytes: 0,
            console_limit,
            truncated: false,
            next_call: 0,
            resolvers: HashMap::new(),
            new_calls: Vec::new(),
        }
    }

    pub(crate) fn begin(&mut self, env: Vec<(String, String)>, host: Arc<dyn Host>) {
        self.clear();
        self.env = env;
        self.host = Some(host);
    }

    /// Forgets everything of the current run (JavaScript values included).
    pub(crate) fn clear(&mut self) {
        self.env.clear();
        self.host = None;
        self.response = None;
        self.console = Vec::new();
        self.console_bytes = 0;
        self.truncated = false;
        self.resolvers.clear();
        self.new_calls.clear();
    }

    pub(crate) fn take_console(&mut self) -> Vec<ConsoleLine> {
        std::mem::take(&mut self.console)
    }

    pub(crate) fn env_value(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// Registers a pending activity; `None` when the run has too many already.
    pub(crate) fn add_call(&mut self, resolvers: Resolvers, future: HostFuture) -> Option<u64> {
        if self.resolvers.len() >= MAX_PENDING_CALLS {
            return None;
        }
        let id = self.next_call;
        self.next_call += 1;
        self.resolvers.insert(id, resolvers);
        self.new_calls.push((id, future));
        Some(id)
    }

    /// Appends a console line, keeping the total under the limit; past it, one marker line.
    pub(crate) fn log(&mut self, level: ConsoleLevel, text: String) {
        if self.truncated {
            return;
        }
        let room = self.console_limit.saturating_sub(self.console_bytes);
        if text.len() <= room {
            self.console_bytes += text.len();
            self.console.push(ConsoleLine { level, text });
            return;
        }
        let mut cut = room;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut > 0 {
            self.console.push(ConsoleLine {
                level,
                text: text[..cut].to_string(),
            });
        }
        self.console_bytes = self.console_limit;
        self.truncated = true;
        self.console.push(ConsoleLine {
            level: ConsoleLevel::Warn,
            text: format!(
                "… truncated (console output over {} bytes)",
                self.console_limit
            ),
        });
    }
}
