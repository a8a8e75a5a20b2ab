//! `shell` tasks: `/bin/sh -c <command>` with a timeout that kills the whole process group and a
//! bounded capture of what the command prints.
//!
//! The command text comes only from a function file (reviewed in git), never from request or event
//! data. It inherits the runner's environment plus the task's `env`, and runs in its own process
//! group so that a timeout also kills the children it started (`sleep` in a pipeline, say).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How much of each stream is kept; the rest is read and dropped so the command never blocks.
pub const CAPTURE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOutcome {
    /// The exit code; `None` when killed by a signal or the timeout.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// stdout, then stderr under a `--- stderr ---` line, each cut at [`CAPTURE_BYTES`].
    pub output: String,
}

impl ShellOutcome {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

pub async fn run_shell(
    command: &str,
    env: &BTreeMap<String, String>,
    cwd: Option<&Path>,
    timeout: Duration,
) -> std::io::Result<ShellOutcome> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_task = tokio::spawn(capture(stdout));
    let err_task = tokio::spawn(capture(stderr));
    let (exit_code, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => (status?.code(), false),
        Err(_) => {
            if let Some(pid) = pid {
                kill_group(pid);
            }
            let _ = child.wait().await;
            (None, true)
        }
    };
    // Children that outlived the shell may still hold the pipes open: do not wait for them.
    if let Some(pid) = pid {
        kill_group(pid);
    }
    let stdout = out_task.await.unwrap_or_default();
    let stderr = err_task.await.unwrap_or_default();
    let mut output = stdout;
    if !stderr.is_empty() {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str("--- stderr ---\n");
        output.push_str(&stderr);
    }
    Ok(ShellOutcome {
        exit_code,
        timed_out,
        output,
    })
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals the process group we created; it touches no
        // memory of ours.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

async fn capture<R: AsyncRead + Unpin>(stream: Option<R>) -> String {
    let Some(mut stream) = stream else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut dropped = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = CAPTURE_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                dropped += n.saturating_sub(room);
            }
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        text.push_str(&format!("\n… {dropped} more bytes not kept\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    async fn sh(cmd: &str, timeout_ms: u64) -> ShellOutcome {
        run_shell(
            cmd,
            &BTreeMap::new(),
            None,
            Duration::from_millis(timeout_ms),
        )
        .await
        .expect("spawn")
    }

    #[tokio::test]
    async fn captures_output_and_exit_status() {
        let o = sh("echo out; echo err >&2; exit 3", 5000).await;
        assert_eq!(o.exit_code, Some(3));
        assert!(!o.succeeded());
        assert_eq!(o.output, "out\n--- stderr ---\nerr\n");
        assert!(sh("true", 5000).await.succeeded());
    }

    #[tokio::test]
    async fn env_and_cwd_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = BTreeMap::from([("GREETING".to_string(), "hi there".to_string())]);
        let o = run_shell(
            "echo \"$GREETING\"; pwd",
            &env,
            Some(dir.path()),
            Duration::from_secs(5),
        )
        .await
        .expect("spawn");
        let real = dir.path().canonicalize().expect("canonical");
        assert_eq!(o.output, format!("hi there\n{}\n", real.display()));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let marker = tempfile::tempdir().expect("tempdir");
        let file = marker.path().join("survivor");
        let cmd = format!("(sleep 2; touch {}) & sleep 30", file.display());
        let started = Instant::now();
        let o = sh(&cmd, 300).await;
        assert!(o.timed_out);
        assert_eq!(o.exit_code, None);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // The background child was killed with its group: it never gets to touch the file.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!file.exists(), "a child of the timed-out command survived");
    }

    #[tokio::test]
    async fn capture_is_bounded() {
        let o = sh("head -c 200000 /dev/zero | tr '\\\\0' a", 5000).await;
        assert!(o.output.len() < CAPTURE_BYTES + 100, "{}", o.output.len());
        assert!(o.output.contains("more bytes not kept"));
    }
}
