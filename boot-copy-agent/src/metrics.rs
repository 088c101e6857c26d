//! The Prometheus text endpoint (off by default): the heartbeat's counters, each sink's
//! counters labelled by sink with gauges for its state and queue depth, and the build, served on
//! a loopback address. The daemon renders the page once a second; serving it costs nothing on
//! the detection path.
use crate::{records::Counters, sink::SinkStats};
use std::{
    collections::VecDeque,
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::oneshot,
    time::timeout,
};

/// The latest rendered page, shared with the server task.
#[derive(Clone, Default)]
pub struct Page(Arc<Mutex<String>>);

impl Page {
    pub fn update(&self, counters: &Counters) {
        let text = render(counters);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }

    fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What a counter counts, for its HELP line.
fn help(name: &str) -> &'static str {
    match name {
        "execs_seen" => "Execs the kernel program saw.",
        "events_submitted" => "Exec records the kernel put into the ring buffer.",
        "ringbuf_drops" => "Records the kernel dropped because the ring buffer was full.",
        "args_truncated" => "Records whose argument bytes were cut.",
        "parent_misses" => "Execs whose parent had no entry in the kernel's process table.",
        "args_read_failures" => "Argument reads that faulted in the kernel.",
        "path_truncations" => "Paths longer than the kernel program captures.",
        "table_update_failures" => "Process-table updates the kernel could not make.",
        "forks" => "Forks the kernel program saw.",
        "degraded_records" => "Records missing fields the running kernel's layout lacks.",
        "candidates" => "Exec records the agent evaluated.",
        "decode_errors" => "Ring-buffer records the agent could not decode.",
        "alerts" => "Alerts written.",
        "suppressed" => "Alerts suppressed by the per-rule alert budget.",
        "programs_detached" => "Kernel programs found detached by another process.",
        "maps_tampered" => "Changes to the kernel prefilter maps by another process.",
        _ => "A boot-copy counter, since the agent started.",
    }
}

/// A per-sink metric: name, type, HELP text and its value for one sink.
type SinkFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&SinkStats) -> u64,
);

/// The counters in the Prometheus text exposition format (0.0.4).
pub fn render(counters: &Counters) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP boot_copy_build_info The running agent's version.\n# TYPE boot_copy_build_info gauge\nboot_copy_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in counters.scalars() {
        let metric = format!("boot_copy_{name}_total");
        let _ = writeln!(out, "# HELP {metric} {}", help(&name));
        let _ = writeln!(out, "# TYPE {metric} counter\n{metric} {value}");
    }
    let sinks = counters.daemon.iter().flat_map(|d| &d.sinks);
    let families: [SinkFamily; 5] = [
        (
            "sink_records_written_total",
            "counter",
            "Records a sink wrote.",
            |s| s.written,
        ),
        (
            "sink_records_dropped_total",
            "counter",
            "Records refused because the sink's queue was full.",
            |s| s.dropped,
        ),
        (
            "sink_records_failed_total",
            "counter",
            "Records lost to a sink's write errors.",
            |s| s.failed,
        ),
        (
            "sink_queue_depth",
            "gauge",
            "Records waiting in a sink's queue.",
            |s| s.queued,
        ),
        (
            "sink_healthy",
            "gauge",
            "1 while a sink writes, 0 from an error until it writes again.",
            |s| u64::from(s.healthy),
        ),
    ];
    for (family, kind, text, value) in families {
        let mut sinks = sinks.clone().peekable();
        if sinks.peek().is_none() {
            continue;
        }
        let _ = writeln!(
            out,
            "# HELP boot_copy_{family} {text}\n# TYPE boot_copy_{family} {kind}"
        );
        for s in sinks {
            let _ = writeln!(
                out,
                "boot_copy_{family}{{sink=\"{}\"}} {}",
                s.sink,
                value(s)
            );
        }
    }
    out
}

/// Connections served at once. The page is tiny and a scrape takes milliseconds, so more are
/// only ever idle ones.
const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send its request, and to take the response.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed accept (e.g. no descriptors left) instead of retrying at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Binds `addr` and serves `page` to every request until the runtime stops. Any local user can
/// connect, so connections are bounded: each must send its request and take the response
/// within [`IO_TIMEOUT`], and when [`MAX_CONNECTIONS`] are open the oldest is closed for the new
/// one (a scraper sends its request at once; a connection held open is the idle one).
pub async fn serve(addr: SocketAddr, page: Page) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        let mut open: VecDeque<oneshot::Sender<()>> = VecDeque::new();
        loop {
            let conn = match listener.accept().await {
                Ok((conn, _)) => conn,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            open.retain(|c| !c.is_closed());
            if open.len() >= MAX_CONNECTIONS
                && let Some(oldest) = open.pop_front()
            {
                let _ = oldest.send(());
            }
            let (close, closed) = oneshot::channel();
            open.push_back(close);
            let page = page.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = answer(conn, &page) => {}
                    _ = closed => {}
                }
            });
        }
    });
    Ok(())
}

/// Reads the request (any path gets the metrics) and writes the page, each within
/// [`IO_TIMEOUT`].
async fn answer(mut conn: tokio::net::TcpStream, page: &Page) {
    let mut buf = [0u8; 1024];
    if !matches!(timeout(IO_TIMEOUT, conn.read(&mut buf)).await, Ok(Ok(n)) if n > 0) {
        return;
    }
    let body = page.get();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = timeout(IO_TIMEOUT, conn.write_all(response.as_bytes())).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::DaemonCounters;

    #[test]
    fn counters_help_labelled_sinks_gauges_and_build_info() {
        let mut c = Counters::default();
        c.kernel[boot_copy_common::counter::RINGBUF_DROPS as usize] = 3;
        c.daemon = Some(DaemonCounters {
            sinks: vec![
                SinkStats {
                    sink: "alert_log",
                    written: 5,
                    dropped: 0,
                    failed: 0,
                    queued: 2,
                    healthy: true,
                },
                SinkStats {
                    sink: "syslog",
                    written: 1,
                    dropped: 4,
                    failed: 6,
                    queued: 0,
                    healthy: false,
                },
            ],
            ..DaemonCounters::default()
        });
        let page = render(&c);
        for line in [
            "boot_copy_build_info{version=\"0.1.0\"} 1",
            "# HELP boot_copy_ringbuf_drops_total Records the kernel dropped because the ring buffer was full.",
            "# TYPE boot_copy_ringbuf_drops_total counter",
            "boot_copy_ringbuf_drops_total 3",
            "boot_copy_sink_records_dropped_total{sink=\"syslog\"} 4",
            "boot_copy_sink_records_failed_total{sink=\"syslog\"} 6",
            "boot_copy_sink_records_written_total{sink=\"alert_log\"} 5",
            "# TYPE boot_copy_sink_queue_depth gauge",
            "boot_copy_sink_queue_depth{sink=\"alert_log\"} 2",
            "boot_copy_sink_healthy{sink=\"alert_log\"} 1",
            "boot_copy_sink_healthy{sink=\"syslog\"} 0",
        ] {
            assert!(
                page.lines().any(|l| l == line),
                "missing {line:?} in\n{page}"
            );
        }
        // Every family has its HELP and TYPE once, before its samples.
        assert_eq!(page.matches("# TYPE boot_copy_sink_healthy ").count(), 1);
        assert!(
            !page.contains("syslog_dropped"),
            "per-sink names are labels now"
        );
    }

    #[tokio::test]
    async fn serves_the_page_over_http() {
        let page = Page::default();
        let mut counters = Counters::default();
        counters.kernel[boot_copy_common::counter::EXECS_SEEN as usize] = 7;
        page.update(&counters);
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        serve(addr, page).await.unwrap();
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"));
        assert!(
            response.contains("\nboot_copy_execs_seen_total 7\n"),
            "{response}"
        );
    }

    #[tokio::test]
    async fn idle_connections_neither_pile_up_nor_block_a_scrape() {
        let page = Page::default();
        page.update(&Counters::default());
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        serve(addr, page).await.unwrap();
        let mut idle = Vec::new();
        for _ in 0..(MAX_CONNECTIONS * 4) {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let scrape = async {
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            conn.write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
                .await
                .unwrap();
            let mut response = String::new();
            conn.read_to_string(&mut response).await.unwrap();
            response
        };
        let response = timeout(Duration::from_secs(1), scrape)
            .await
            .expect("scrape answered");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        // The server closed all but the newest idle connections.
        let mut closed = 0;
        for c in &mut idle {
            let mut b = [0u8; 1];
            if matches!(
                timeout(Duration::from_millis(50), c.read(&mut b)).await,
                Ok(Ok(0))
            ) {
                closed += 1;
            }
        }
        assert!(
            closed >= idle.len() - MAX_CONNECTIONS,
            "{closed} of {} closed",
            idle.len()
        );
    }
}
