//! The MCP server's worker threads: each runs tool calls from the queue, reports progress, and
//! answers unless the call was cancelled.

use std::io;
use std::sync::Arc;

use serde_json::json;

use super::protocol::{LogLevel, error_answer, result_answer};
use super::{INTERNAL_ERROR, Inner, Job, SERVER_NAME, WORKER_STACK_BYTES, tool_result};
use crate::tools::{self, CallContext, Progress};

impl Inner {
    pub(super) fn shutdown(&self) {
        drop(self.jobs.lock().take());
        {
            let mut calls = self.calls.lock();
            calls.closed = true;
            for call in calls.by_id.values() {
                call.interrupt.interrupt();
            }
        }
        if self.backend.interrupts_waits() {
            let workers = std::mem::take(&mut *self.workers.lock());
            for worker in workers {
                if worker.join().is_err() {
                    log::error!("an MCP worker thread panicked");
                }
            }
        }
    }

    pub(super) fn log(&self, level: LogLevel, text: &str) {
        match level {
            LogLevel::Debug => log::debug!("{text}"),
            LogLevel::Info | LogLevel::Notice => log::info!("{text}"),
            LogLevel::Warning => log::warn!("{text}"),
            _ => log::error!("{text}"),
        }
        let wanted = self.session.lock().log_level;
        if wanted.is_some_and(|wanted| level >= wanted) {
            self.out.send(&json!({
                "jsonrpc": "2.0",
                "method": "notifications/message",
                "params": {"level": level.name(), "logger": SERVER_NAME, "data": text},
            }));
        }
    }

    /// Runs one tool call on this (worker) thread; returns whether the worker goes on.
    pub(super) fn run(&self, job: Job) -> bool {
        {
            let mut calls = self.calls.lock();
            match calls.by_id.get_mut(&job.key) {
                Some(call) if call.cancelled => {
                    calls.by_id.remove(&job.key);
                    return true;
                }
                Some(call) => call.started = true,
                None => {}
            }
        }
        let report = |progress: &Progress| self.progress(&job, progress);
        let mut context = CallContext::new()
            .cancel(&job.interrupt)
            .positions(&self.positions);
        if job.progress_token.is_some() {
            context = context.progress(&report);
        }
        // The tools answer every failure as a result; a panic is a bug, answered as one (and
        // the worker lives on).
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let api = self.backend.api(&job.interrupt);
            tools::call_with(&*api, &job.name, &job.arguments, &context)
        }));
        let (cancelled, replaced) = {
            let mut calls = self.calls.lock();
            let state = calls.by_id.remove(&job.key);
            let (cancelled, replaced) = state.map_or((false, false), |s| (s.cancelled, s.replaced));
            if replaced {
                calls.abandoned -= 1;
            }
            (cancelled, replaced)
        };
        if !cancelled {
            job.reply.send(match result {
                Ok(result) => result_answer(&job.id, tool_result(result)),
                Err(_) => {
                    log::error!("the tool {} panicked", job.name);
                    error_answer(
                        &job.id,
                        INTERNAL_ERROR,
                        "Internal error: the tool panicked.",
                    )
                }
            });
        }
        !replaced
    }

    /// Sends a progress notification for `job`, unless it has been cancelled.
    pub(super) fn progress(&self, job: &Job, progress: &Progress) {
        let Some(token) = &job.progress_token else {
            return;
        };
        if job.interrupt.is_interrupted() {
            return;
        }
        let seconds = progress.elapsed.as_millis() as f64 / 1000.0;
        let mut params = json!({"progressToken": token, "progress": seconds});
        if !progress.line.is_empty() {
            params["message"] = json!(progress.line);
        }
        self.out.send(&json!({
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": params,
        }));
    }
}

/// Starts a worker: it runs calls from the queue until the queue is closed, or until it has
/// been replaced.
pub(super) fn spawn_worker(inner: &Arc<Inner>) -> io::Result<std::thread::JoinHandle<()>> {
    let inner = Arc::clone(inner);
    std::thread::Builder::new()
        .name("procwarden-mcp".into())
        .stack_size(WORKER_STACK_BYTES)
        .spawn(move || {
            while let Ok(job) = inner.queue.recv() {
                if !inner.run(job) {
                    return;
                }
            }
        })
}
