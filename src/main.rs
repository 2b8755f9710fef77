//! The `strand` binary: parses the command line and runs `serve` or `bench`.

use clap::Parser;
use std::process::ExitCode;
use strand::cli::{Cli, Command, MaxConnections, ServeArgs};
use strand::config::Config;
use strand::limits::OsLimits;
use strand::server::Server;
use strand::service_manager;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Bench(args)) => strand::bench::run(args),
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    strand::memory::limit_arenas();
    init_logging(args.log_level);
    install_panic_hook();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            log::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: ServeArgs) -> Result<(), String> {
    // First, while no other thread runs: it clears LISTEN_FDS from the environment.
    let inherited = service_manager::inherited_listeners()?;
    let max_connections = match args.max_connections {
        MaxConnections::Fixed(n) => n,
        MaxConnections::Auto => auto_max_connections(),
    };
    let config = Config::from_args(&args, max_connections)?;
    if inherited.acme_http.is_some() && args.acme_domains.is_empty() {
        log::warn!("a socket named acme-http was passed without --acme-domain: unused");
    }
    let server = match inherited.serving {
        Some(listener) => {
            log::info!("serving the socket passed by the service manager (LISTEN_FDS), not --bind");
            Server::from_listener(listener, config)
                .map_err(|e| format!("cannot serve the passed socket: {e}"))?
        }
        None => Server::bind(config).map_err(|e| format!("cannot bind {}: {e}", args.bind))?,
    };
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    // Before the port serves: a kept certificate is installed at once.
    let shared = server.shared();
    if let (Some(acme), Some(tls), Some(stats)) = (&shared.config.acme, &shared.tls, &shared.acme) {
        strand::acme::start(
            acme,
            &shared.config.data_dir,
            tls.certs.clone(),
            addr.port(),
            stats.clone(),
            inherited.acme_http,
        )?;
    }
    let handle = server.shutdown_handle();
    let reload = server.tls_reload();
    // SIGHUP reloads the certificate (and is ignored without TLS, rather
    // than ending the process as it would by default).
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == signal_hook::consts::SIGHUP {
                    match &reload {
                        Some(reload) => {
                            reload.now("SIGHUP");
                        }
                        None => log::info!("SIGHUP: no certificate to reload"),
                    }
                    continue;
                }
                log::info!("signal {signal}: shutting down");
                service_manager::notify_stopping();
                handle.shutdown();
                break;
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    log::info!("listening on {addr}");
    let admin_token = server.shared().config.admin_token.as_deref();
    if let Some(warning) = strand::http::operator::startup_warning(addr, admin_token) {
        log::warn!("{warning}");
    }
    service_manager::notify_ready(&addr.to_string());
    server.run();
    Ok(())
}

/// `--max-connections auto`: the ceiling from the OS limits, logged with
/// the limit that set it and those that could not be read.
fn auto_max_connections() -> usize {
    let limits = OsLimits::read();
    let ceiling = limits.ceiling();
    if limits.unknown.is_empty() {
        log::info!(
            "max connections: {} (auto; bound by {})",
            ceiling.connections,
            ceiling.reason
        );
    } else {
        log::warn!(
            "max connections: {} (auto; bound by {}; unreadable here: {}; \
             set --max-connections to override)",
            ceiling.connections,
            ceiling.reason,
            limits.unknown.join(", ")
        );
    }
    ceiling.connections
}

fn init_logging(level: log::LevelFilter) {
    use std::io::IsTerminal;
    // Only strand's own records: tungstenite logs every frame at debug.
    let config = simplelog::ConfigBuilder::new()
        .set_thread_level(log::LevelFilter::Off)
        .set_target_level(log::LevelFilter::Off)
        .add_filter_allow_str("strand")
        .build();
    let color = if std::io::stderr().is_terminal() {
        simplelog::ColorChoice::Auto
    } else {
        simplelog::ColorChoice::Never
    };
    let _ = simplelog::TermLogger::init(level, config, simplelog::TerminalMode::Stderr, color);
}

/// Logs panics through `log`, with the thread's name, so a panic in one
/// connection shows in the server's log like any other error.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let name = strand::threads::current_name();
        log::error!("panic in thread {}: {info}", name.as_deref().unwrap_or("?"));
    }));
}
