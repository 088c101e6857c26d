//! The Prometheus text endpoint (off by default): the same counters as the heartbeat, served on
//! a loopback address. The daemon renders the page once a second; serving it costs nothing on the
//! detection path.
use crate::records::{Counters, counters::Listed};
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
        let text = render(&counters.list());
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }

    fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Counters in the Prometheus text exposition format (0.0.4).
pub fn render(counters: &Listed) -> String {
    let mut out = String::new();
    for (name, value) in counters {
        let metric = format!("boot_copy_{name}_total");
        let _ = writeln!(
            out,
            "# HELP {metric} boot-copy counter {name} since the agent started."
        );
        let _ = writeln!(out, "# TYPE {metric} counter");
        let _ = writeln!(out, "{metric} {value}");
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

    #[test]
    fn renders_counters() {
        let text = render(&vec![("alerts".to_owned(), 3)]);
        assert_eq!(
            text,
            "# HELP boot_copy_alerts_total boot-copy counter alerts since the agent started.\n# TYPE boot_copy_alerts_total counter\nboot_copy_alerts_total 3\n"
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
        page.update(&vec![("execs_seen".to_owned(), 1)]);
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
