//! `functiond serve` (the default) and `functiond healthcheck`.

use std::process::ExitCode;
use std::sync::Arc;

use functiond::config::runner::RunnerConfig;
use functiond::config::Schemas;
use functiond::snapshot::Trigger;
use functiond::{app, telemetry};

pub fn serve(config: RunnerConfig, schemas: Arc<Schemas>) -> ExitCode {
    telemetry::init_logging(config.log_format, &config.log_level);
    let Some(runtime) = super::runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async move {
        let running = match app::start(&config, schemas).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("functiond: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = wait_for_signals(&running).await {
            eprintln!("functiond: cannot install signal handlers: {e}");
        }
        tracing::info!("shutting down");
        match running.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("functiond: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// SIGHUP reloads; SIGTERM and SIGINT return (to shut down).
async fn wait_for_signals(running: &app::Running) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                let _ = running.reloads.try_send(Trigger::Signal);
            }
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        }
    }
}

pub fn healthcheck(listen: std::net::SocketAddr) -> ExitCode {
    use std::io::{Read, Write};
    use std::time::Duration;
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let answer = (|| -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut buf = String::new();
        stream.read_to_string(&mut buf)?;
        Ok(buf)
    })();
    match answer {
        Ok(text) if text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200") => {
            ExitCode::SUCCESS
        }
        Ok(text) => {
            eprintln!("unhealthy: {}", text.lines().next().unwrap_or_default());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
