//! A slot: one QuickJS runtime with one hardened context, running one flow at a time.
//!
//! The worker drives a run through `start` (compile if needed, call the flow function, run
//! jobs), any number of `settle` (an activity finished: resolve or reject its promise, run
//! jobs), and `finish` (read the outcome, reset the per-run state). All three are synchronous;
//! waiting for activities happens in the worker. Every entry into JavaScript checks the
//! limits afterwards: a timeout or memory-limit hit marks the slot `spent`, and the worker
//! drops it instead of reusing it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use rquickjs::convert::List;
use rquickjs::function::Args;
use rquickjs::promise::PromiseState;
use rquickjs::{Context, Ctx, Exception, Function, Persistent, Promise, Runtime, Value};

use super::alloc::{Budget, CountingAllocator};
use super::natives::{self, Internals};
use super::pool::{Counters, PoolConfig};
use super::script::{relocate, wrap, wrap_prefix_len, COMPILE_PREFIX};
use super::state::{HostFuture, HostResult, RunState};
use super::worker::Prepared;
use super::{FlowError, FlowOutcome};

/// The run's deadline, read by the interrupt handler.
#[derive(Default)]
struct Clock {
    deadline: Cell<Option<Instant>>,
    interrupted: Cell<bool>,
}

impl Clock {
    fn should_interrupt(&self) -> bool {
        match self.deadline.get() {
            Some(deadline) if Instant::now() >= deadline => {
                self.interrupted.set(true);
                true
            }
            _ => false,
        }
    }
}

struct Compiled {
    script_id: Arc<str>,
    params: Vec<String>,
    /// The flow function, or the syntax error (not retried until the version changes).
    func: Result<Persistent<Function<'static>>, String>,
    last_used: u64,
}

// Field order is drop order: every JavaScript value before the context and the runtime.
pub(crate) struct Slot {
    scripts: HashMap<Arc<str>, Compiled>,
    main: Option<Persistent<Promise<'static>>>,
    internals: Internals,
    state: Rc<RefCell<RunState>>,
    ctx: Context,
    _rt: Runtime,
    budget: Rc<Budget>,
    clock: Rc<Clock>,
    tick: u64,
    /// Length of the wrapper before the script's first character (stack columns on line 1).
    prefix_len: Cell<usize>,
    spent: bool,
    counters: Arc<Counters>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Resolvers held by the run state must go before the runtime is freed.
        self.state.borrow_mut().clear();
    }
}

impl Slot {
    pub(crate) fn new(config: &PoolConfig, counters: Arc<Counters>) -> Result<Self, String> {
        let budget = Budget::new();
        let rt = Runtime::new_with_alloc(CountingAllocator(budget.clone()))
            .map_err(|e| format!("cannot create a QuickJS runtime: {e}"))?;
        rt.set_max_stack_size(config.max_stack_bytes);
        let clock = Rc::new(Clock::default());
        let handler_clock = clock.clone();
        rt.set_interrupt_handler(Some(Box::new(move || handler_clock.should_interrupt())));
        let ctx = Context::full(&rt).map_err(|e| format!("cannot create a context: {e}"))?;
        let state = Rc::new(RefCell::new(RunState::new(config.console_limit_bytes)));
        let internals = ctx.with(|ctx| {
            natives::install(&ctx, &state).map_err(|e| match e {
                rquickjs::Error::Exception => format!("prelude failed: {:?}", ctx.catch()),
                other => format!("prelude failed: {other}"),
            })
        })?;
        counters.slot_built();
        Ok(Self {
            scripts: HashMap::new(),
            main: None,
            internals,
            state,
            ctx,
            _rt: rt,
            budget,
            clock,
            tick: 0,
            prefix_len: Cell::new(0),
            spent: false,
            counters,
        })
    }

    /// Whether the slot must be dropped instead of reused.
    pub(crate) fn is_spent(&self) -> bool {
        self.spent
    }

    /// Bytes the slot's runtime holds now.
    pub(crate) fn used_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Starts a run: compile (cached), call the flow function, run jobs until it waits.
    pub(crate) fn start(
        &mut self,
        job: &mut Prepared,
        deadline: Instant,
        max_scripts: usize,
    ) -> Result<(), FlowError> {
        self.clock.interrupted.set(false);
        self.clock.deadline.set(Some(deadline));
        self.budget
            .set_limit(self.budget.used().saturating_add(job.memory_limit_bytes));
        self.state
            .borrow_mut()
            .begin(std::mem::take(&mut job.env), job.host.clone());
        self.tick += 1;
        self.prefix_len
            .set(COMPILE_PREFIX.len() + wrap_prefix_len(&job.params));
        let cached = self.scripts.get_mut(&job.name).and_then(|c| {
            (c.script_id == job.script_id && c.params == job.params).then(|| {
                c.last_used = self.tick;
                c.func.clone()
            })
        });
        let ctx = self.ctx.clone();
        ctx.with(|ctx| {
            let func = match cached {
                Some(Ok(func)) => func.restore(&ctx).map_err(internal)?,
                Some(Err(message)) => return Err(FlowError::Compile { message }),
                None => self.compile(&ctx, job, max_scripts)?,
            };
            let args: rquickjs::Array = ctx
                .json_parse(std::mem::take(&mut job.args_json))
                .and_then(|v| v.get())
                .map_err(|e| self.fail(&ctx, e))?;
            let mut call = Args::new(ctx.clone(), args.len());
            for value in args.iter::<Value>() {
                let value = value.map_err(|e| self.fail(&ctx, e))?;
                call.push_arg(value).map_err(|e| self.fail(&ctx, e))?;
            }
            let promise: Promise = call.apply(&func).map_err(|e| self.fail(&ctx, e))?;
            self.main = Some(Persistent::save(&ctx, promise));
            self.drain(&ctx)
        })
    }

    /// Compiles the job's script and caches the function, or the syntax error, for its name.
    fn compile<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        job: &Prepared,
        max_scripts: usize,
    ) -> Result<Function<'js>, FlowError> {
        self.counters.compiled();
        let compile = self
            .internals
            .compile
            .clone()
            .restore(ctx)
            .map_err(internal)?;
        let wrapped = format!("{COMPILE_PREFIX}{}", wrap(&job.params, &job.source));
        let compiled = match compile.call::<_, Function>((wrapped,)) {
            Ok(func) => Ok(func),
            Err(rquickjs::Error::FromJs { .. }) => Err(FlowError::Compile {
                message: "the script does not evaluate to a function".into(),
            }),
            Err(e) => Err(match self.fail(ctx, e) {
                FlowError::Thrown { message, stack } => {
                    // A syntax error's first frame is its position in the script.
                    let at = stack
                        .as_deref()
                        .and_then(|s| s.lines().next())
                        .and_then(|l| l.trim().strip_prefix("at flow:"))
                        .map(|pos| format!(" (line:column {pos})"))
                        .unwrap_or_default();
                    FlowError::Compile {
                        message: format!("{message}{at}"),
                    }
                }
                other => other,
            }),
        };
        let entry = match &compiled {
            Ok(func) => Ok(Persistent::save(ctx, func.clone())),
            Err(FlowError::Compile { message }) => Err(message.clone()),
            // A limit hit while compiling says nothing about the script.
            Err(_) => return compiled,
        };
        if self.scripts.len() >= max_scripts && !self.scripts.contains_key(&job.name) {
            let oldest = self
                .scripts
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.scripts.remove(&oldest);
            }
        }
        self.scripts.insert(
            job.name.clone(),
            Compiled {
                script_id: job.script_id.clone(),
                params: job.params.clone(),
                func: entry,
                last_used: self.tick,
            },
        );
        compiled
    }

    /// Activities started since the last call, to be polled by the worker.
    pub(crate) fn take_calls(&mut self) -> Vec<(u64, HostFuture)> {
        std::mem::take(&mut self.state.borrow_mut().new_calls)
    }

    /// An activity finished: settle its promise and run the jobs that follow.
    pub(crate) fn settle(&mut self, id: u64, result: HostResult) -> Result<(), FlowError> {
        let Some(resolvers) = self.state.borrow_mut().resolvers.remove(&id) else {
            return Ok(());
        };
        let ctx = self.ctx.clone();
        ctx.with(|ctx| {
            let settled = match result {
                Ok(text) => resolvers.resolve.restore(&ctx).and_then(|f| {
                    let value = ctx.json_parse(text.into_bytes())?;
                    f.call::<_, ()>((value,))
                }),
                Err(message) => resolvers.reject.restore(&ctx).and_then(|f| {
                    let error = Exception::from_message(ctx.clone(), &message)?;
                    f.call::<_, ()>((error,))
                }),
            };
            settled.map_err(|e| self.fail(&ctx, e))?;
            self.drain(&ctx)
        })
    }

    /// Ends the run: the outcome, with the per-run state reset.
    pub(crate) fn finish(
        &mut self,
        status: Result<(), FlowError>,
        started: Instant,
    ) -> FlowOutcome {
        let main = self.main.take();
        let result = match status {
            Err(e) => Err(e),
            Ok(()) => {
                let ctx = self.ctx.clone();
                ctx.with(|ctx| self.settled(&ctx, main))
            }
        };
        if matches!(
            result,
            Err(FlowError::Timeout | FlowError::MemoryLimit | FlowError::Internal(_))
        ) || self.clock.interrupted.get()
            || self.budget.hit()
        {
            self.spent = true;
        }
        self.clock.deadline.set(None);
        self.budget.set_limit(usize::MAX);
        let mut state = self.state.borrow_mut();
        let response = state.response.take();
        let console = state.take_console();
        state.clear();
        FlowOutcome {
            response,
            console,
            result,
            duration: started.elapsed(),
        }
    }

    fn settled(
        &self,
        ctx: &Ctx<'_>,
        main: Option<Persistent<Promise<'static>>>,
    ) -> Result<(), FlowError> {
        let promise = main
            .ok_or_else(|| FlowError::Internal("run has no promise".into()))?
            .restore(ctx)
            .map_err(internal)?;
        match promise.state() {
            PromiseState::Resolved => Ok(()),
            PromiseState::Rejected => match promise.result::<Value>() {
                Some(Err(e)) => Err(self.fail(ctx, e)),
                _ => Err(FlowError::Internal(
                    "rejected promise without reason".into(),
                )),
            },
            PromiseState::Pending => Err(FlowError::Thrown {
                message: "the flow awaits a promise that never settles".into(),
                stack: None,
            }),
        }
    }

    /// Runs promise jobs until none is left (or a limit stops JavaScript).
    fn drain(&self, ctx: &Ctx<'_>) -> Result<(), FlowError> {
        while ctx.execute_pending_job() {
            if self.clock.interrupted.get() || self.budget.hit() {
                break;
            }
        }
        self.limit_hit().map_or(Ok(()), Err)
    }

    fn limit_hit(&self) -> Option<FlowError> {
        if self.budget.hit() {
            Some(FlowError::MemoryLimit)
        } else if self.clock.interrupted.get() {
            Some(FlowError::Timeout)
        } else {
            None
        }
    }

    /// Maps an error out of QuickJS to a flow error, describing a thrown value.
    fn fail(&self, ctx: &Ctx<'_>, error: rquickjs::Error) -> FlowError {
        if let Some(limit) = self.limit_hit() {
            return limit;
        }
        if !error.is_exception() {
            return FlowError::Internal(error.to_string());
        }
        let thrown = ctx.catch();
        let described = self
            .internals
            .describe
            .clone()
            .restore(ctx)
            .and_then(|d| d.call::<_, List<(String, Option<String>)>>((thrown,)));
        match described {
            Ok(List((message, stack))) => FlowError::Thrown {
                message,
                stack: stack.map(|s| relocate(&s, self.prefix_len.get())),
            },
            Err(e) => self
                .limit_hit()
                .unwrap_or(FlowError::Internal(e.to_string())),
        }
    }
}

fn internal(e: rquickjs::Error) -> FlowError {
    FlowError::Internal(e.to_string())
}
