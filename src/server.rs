//! The server: binds the listener, runs the blocking accept loop that hands
//! each connection to the request-head door ([`Door`]), gives each complete
//! request a thread from the thread [`Cache`], and shuts everything down in
//! order.
//!
//! It builds the [`Shared`] state and hands it to every connection thread;
//! nothing below it knows the accept loop.
//!
//! Shutdown: [`ShutdownHandle::shutdown`] wakes the accept loop through its
//! [`Acceptor`], which accepts no client after that (they stay queued for
//! the next process under socket activation), then queues a 1001 close in
//! every connection's outbox through the [`Registry`]. The server then
//! closes the connections still sending their heads and waits for every
//! connection thread to finish; after the grace period it shuts the sockets
//! of any still running, so a client that stopped reading cannot hold up
//! the exit.

use crate::acceptor::{AcceptWaker, Acceptor};
use crate::config::Config;
use crate::http::door::{Arrival, Dispatch, Door};
use crate::memory::Trimmer;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::threads::Cache;
use crate::tls::reload::{Reload, Watcher};
use crate::ws::registry::Registry;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Stack of a connection thread. Only touched pages cost memory; this is
/// room for JSON handling and logging with a wide margin.
const CONNECTION_STACK: usize = 256 * 1024;
/// The listening socket's accept queue (as nginx's `backlog`, capped by
/// the kernel at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;
/// How long shutdown waits for connections to finish their close handshakes
/// before cutting the sockets of those still running; with [`CUT_GRACE`]
/// the process exits within the contract's "few seconds" (under 5 s)
/// whatever its clients do.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long it then waits for connections whose sockets it shut.
const CUT_GRACE: Duration = Duration::from_secs(1);

/// A bound server, ready to run.
pub struct Server {
    acceptor: Acceptor,
    waker: AcceptWaker,
    shared: Arc<Shared>,
    stopping: Arc<AtomicBool>,
    live: Arc<LiveThreads>,
    /// Hands the allocator's free pages back after connections end.
    trimmer: Option<Trimmer>,
    /// Reloads `--tls-cert`/`--tls-key` (SIGHUP, and the watcher).
    reload: Option<Reload>,
    /// Reloads them when their files change.
    tls_watch: Option<Watcher>,
}

/// Stops a running [`Server`] from another thread (a signal handler's).
#[derive(Clone)]
pub struct ShutdownHandle {
    waker: AcceptWaker,
    stopping: Arc<AtomicBool>,
    registry: Arc<Registry>,
}

impl ShutdownHandle {
    /// Stops accepting and tells every connection to close with 1001.
    pub fn shutdown(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Stop accepting first, so a client that reconnects on its 1001
        // waits for the next process instead of landing here again.
        self.waker.wake();
        self.registry.close_all();
    }
}

impl Server {
    /// Binds `config.bind` and prepares the shared state.
    pub fn bind(config: Config) -> io::Result<Server> {
        let listener = TcpListener::bind(config.bind)?;
        // std listens with a queue of 128. A burst of connects fills that
        // whenever the accept loop waits a few ms for the CPU, and a client
        // whose SYN finds the queue full waits a whole second to retry.
        // Ask for more; the kernel caps it at net.core.somaxconn.
        rustix::net::listen(&listener, LISTEN_BACKLOG)?;
        Server::from_listener(listener, config)
    }

    /// Serves on `listener`, bound already (e.g. passed by systemd);
    /// `config.bind` is not used.
    pub fn from_listener(listener: TcpListener, config: Config) -> io::Result<Server> {
        let (acceptor, waker) = Acceptor::new(listener)?;
        let shared = Arc::new(Shared::new(config));
        let metrics = shared.metrics.clone();
        let trimmer = Trimmer::start(crate::memory::EVERY, move || {
            let total = metrics.connections_total.load(Ordering::Relaxed);
            total.wrapping_sub(metrics.connections_current.load(Ordering::Relaxed))
        });
        let reload = match (&shared.tls, &shared.config.tls) {
            (Some(tls), Some(files)) => Some(Reload::new(
                tls.certs.clone(),
                files.cert.clone(),
                files.key.clone(),
            )),
            _ => None,
        };
        let tls_watch = reload.clone().and_then(|reload| {
            Watcher::start(reload)
                .map_err(|e| log::warn!("cannot watch the certificate files ({e}); SIGHUP reloads"))
                .ok()
        });
        Ok(Server {
            acceptor,
            waker,
            shared,
            stopping: Arc::new(AtomicBool::new(false)),
            live: Arc::new(LiveThreads::default()),
            trimmer,
            reload,
            tls_watch,
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.acceptor.listener().local_addr()
    }

    /// The shared state, for embedding and tests.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// What reloads `--tls-cert`/`--tls-key` (on SIGHUP), when given.
    pub fn tls_reload(&self) -> Option<Reload> {
        self.reload.clone()
    }

    /// A handle that stops this server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            waker: self.waker.clone(),
            stopping: self.stopping.clone(),
            registry: self.shared.conn_params.registry.clone(),
        }
    }

    /// Accepts connections until shut down, then waits for every
    /// connection thread to finish (at most a few seconds).
    pub fn run(mut self) {
        let config = &self.shared.config;
        let cache = Arc::new(Cache::new(
            "conn",
            CONNECTION_STACK,
            config.thread_cache,
            config.thread_cache_idle,
            self.shared.thread_cache.clone(),
        ));
        let door = Door::new(
            self.shared.conn_params.readiness.clone(),
            self.shared.metrics.clone(),
            config.max_connections,
            config.max_connections_per_ip,
            self.shared.tls.clone(),
            dispatcher(self.shared.clone(), cache.clone(), self.live.clone()),
        );
        let mut refused_logged = Instant::now() - Duration::from_secs(60);
        // One descriptor held in reserve: when the process runs out, it is
        // released to accept the waiting client and answer it 503, instead
        // of leaving it hanging in the backlog.
        let mut reserve = std::fs::File::open("/dev/null").ok();
        while let Some(accepted) = self.acceptor.accept() {
            let stream = match accepted {
                Ok(s) => s,
                Err(e) => {
                    let out_of_fds =
                        matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE));
                    if refused_logged.elapsed() > Duration::from_secs(1) {
                        log::warn!("accept failed: {e}");
                        refused_logged = Instant::now();
                    }
                    if out_of_fds && reserve.take().is_some() {
                        if let Ok((stream, _)) = self.acceptor.listener().accept() {
                            self.metrics()
                                .connections_rejected
                                .fetch_add(1, Ordering::Relaxed);
                            refuse(stream);
                        }
                        reserve = std::fs::File::open("/dev/null").ok();
                    } else {
                        thread::sleep(Duration::from_millis(5));
                    }
                    continue;
                }
            };
            door.admit(stream);
        }
        log::info!("shutting down: closing {} connection(s)", self.live.count());
        self.shared.tails.shutdown();
        // Connections accepted before the stop are served: those still
        // sending their heads get the grace period to finish them (an
        // upgrade then gets its 1001 at once), then they are closed.
        let grace_end = Instant::now() + SHUTDOWN_GRACE;
        while self.metrics().heads_pending.load(Ordering::Relaxed) > 0 {
            let left = grace_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(10)));
        }
        door.close_all();
        let left = grace_end.saturating_duration_since(Instant::now());
        if !self.live.wait_for_zero(left) {
            let cut = self.shared.conn_params.registry.cut_all();
            log::warn!("{cut} connection(s) did not close within the grace period; cut");
            if !self.live.wait_for_zero(CUT_GRACE) {
                log::warn!(
                    "{} connection thread(s) still running at exit",
                    self.live.count()
                );
            }
        }
        cache.shutdown();
        if let Some(mut trimmer) = self.trimmer.take() {
            trimmer.stop();
        }
        if let Some(mut watch) = self.tls_watch.take() {
            watch.stop();
        }
        self.shared.shutdown();
        log::info!("stopped");
    }

    fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }
}

/// Answers 503 from the accept loop, never blocking it for long.
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(&crate::http::response::over_capacity().to_bytes());
}

/// Gives each complete request a thread from `cache`: a parked one, else a
/// new one; when the OS refuses a thread, answers 503.
fn dispatcher(shared: Arc<Shared>, cache: Arc<Cache>, live: Arc<LiveThreads>) -> Dispatch {
    Box::new(move |arrival: Arrival| {
        let guard = live.enter();
        // The arrival waits in a slot so it can be taken back and answered
        // if the OS refuses the thread (the refused job is dropped).
        let slot = Arc::new(Mutex::new(Some(arrival)));
        let theirs = slot.clone();
        let conn_shared = shared.clone();
        let job = Box::new(move || {
            let _guard = guard;
            if let Some(upgrade) = answer_arrival(&conn_shared, theirs) {
                crate::http::router::serve_websocket(&conn_shared, upgrade);
            }
        });
        if let Err((e, job)) = cache.run(job) {
            drop(job);
            shared
                .metrics
                .connections_rejected
                .fetch_add(1, Ordering::Relaxed);
            log::warn!("the OS refused a connection thread: {e}; answered 503");
            let arrival = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(mut arrival) = arrival {
                // On the readiness thread: never block.
                arrival.answer_now(&crate::http::response::over_capacity());
            }
        }
    })
}

/// Takes the arrival from its slot and answers it, returning the upgrade
/// it asks for, boxed: out of line, so that neither the request nor the
/// upgrade stays in a frame beneath the connection loop (an idle
/// connection thread keeps every stack page it touched).
#[inline(never)]
fn answer_arrival(
    shared: &Arc<Shared>,
    slot: Arc<Mutex<Option<Arrival>>>,
) -> Option<Box<crate::http::router::Upgrade>> {
    let arrival = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(slot);
    crate::http::router::handle(shared, arrival?).map(Box::new)
}

/// Counts running connection threads so shutdown can wait for them.
#[derive(Default)]
struct LiveThreads {
    count: Mutex<usize>,
    zero: Condvar,
}

/// Decrements [`LiveThreads`] when its thread ends, panicking or not.
struct LiveGuard(Arc<LiveThreads>);

impl LiveThreads {
    fn enter(self: &Arc<Self>) -> LiveGuard {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        LiveGuard(self.clone())
    }

    fn count(&self) -> usize {
        *self.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_for_zero(&self, timeout: Duration) -> bool {
        let count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        let (count, _) = self
            .zero
            .wait_timeout_while(count, timeout, |n| *n > 0)
            .unwrap_or_else(|e| e.into_inner());
        *count == 0
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut count = self.0.count.lock().unwrap_or_else(|e| e.into_inner());
        *count -= 1;
        if *count == 0 {
            self.0.zero.notify_all();
        }
    }
}
