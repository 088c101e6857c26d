//! The Prometheus text endpoint (off by default): the same counters as the heartbeat, served on
//! a loopback address. The daemon renders the page once a second; serving it costs nothing on the
//! detection path.
use crate::records::{Counters, counters::Listed};
use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
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

/// Binds `addr` and serves `page` to every request until the runtime stops.
pub async fn serve(addr: SocketAddr, page: Page) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let body = page.get();
            tokio::spawn(async move {
                // The request itself is not needed: every path gets the metrics.
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(())
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
}
