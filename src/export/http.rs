//! The HTTP side: `/metrics`, `/healthz` and a small `/` page, served by
//! tiny_http from one thread. Scrapes are answered one at a time (a scrape
//! is a few milliseconds; Prometheus scrapes a target serially), and a stop
//! request is seen between requests, so the scrape in flight at SIGTERM is
//! answered before the exporter detaches.
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tiny_http::{Header, Method, Request, Response};

use super::metrics::{self, Format};
use super::{scrape, ExportError, Shared};

pub struct Server {
    thread: JoinHandle<()>,
    pub addr: SocketAddr,
}

impl Server {
    /// Binds `addr`: done before anything is attached, so a busy port is
    /// an error that leaves nothing behind.
    pub fn bind(addr: SocketAddr) -> Result<tiny_http::Server, ExportError> {
        tiny_http::Server::http(addr).map_err(|e| ExportError::Listen {
            addr,
            detail: e.to_string(),
        })
    }

    /// Serves from a thread until `shared.stop`.
    pub fn start(server: tiny_http::Server, shared: Arc<Shared>) -> Server {
        let addr = server.server_addr().to_ip().unwrap_or(shared.opts.listen);
        let thread = std::thread::Builder::new()
            .name("nw-http".into())
            .spawn(move || serve(&server, &shared))
            .expect("spawning a thread");
        Server { thread, addr }
    }

    /// Waits for the request in flight, if any, to be answered.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

fn serve(server: &tiny_http::Server, sh: &Shared) {
    while !sh.stopping() {
        match server.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(req)) => handle(req, sh),
            Ok(None) => {}
            Err(e) => crate::log::warn(format_args!("http: {e}")),
        }
    }
    // Stopping: answer what was already received, then close.
    while let Ok(Some(req)) = server.try_recv() {
        handle(req, sh);
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}

fn handle(req: Request, sh: &Shared) {
    let path = req.url().split('?').next().unwrap_or("").to_string();
    if !matches!(req.method(), Method::Get | Method::Head) {
        let _ = req.respond(Response::from_string("only GET\n").with_status_code(405));
        return;
    }
    let resp = match path.as_str() {
        "/metrics" => metrics_response(&req, sh),
        "/healthz" => match sh.reader.counters() {
            Ok(_) => Response::from_string("ok\n"),
            Err(e) => {
                Response::from_string(format!("probe unreadable: {e}\n")).with_status_code(503)
            }
        },
        "/" => Response::from_string(INDEX)
            .with_header(header("Content-Type", "text/html; charset=utf-8")),
        _ => Response::from_string("not found: try /metrics\n").with_status_code(404),
    };
    let _ = req.respond(resp);
}

fn metrics_response(req: &Request, sh: &Shared) -> Response<std::io::Cursor<Vec<u8>>> {
    let began = Instant::now();
    let accept = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Accept"))
        .map(|h| h.value.as_str().to_string());
    let format = Format::from_accept(accept.as_deref());
    match scrape::snapshot(sh) {
        Ok(snap) => {
            let body = metrics::encode(snap, format);
            let took = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
            sh.last_scrape_ns.store(took, Ordering::Relaxed);
            Response::from_string(body).with_header(header("Content-Type", format.content_type()))
        }
        Err(e) => Response::from_string(format!("reading the drop aggregate: {e}\n"))
            .with_status_code(500),
    }
}

const INDEX: &str = "<!doctype html><html><head><title>netwhy export</title></head><body>\
<h1>netwhy export</h1>\
<p>Packet drops in this kernel, by reason, function, network namespace and device, \
with the cause netwhy explain gives, for Prometheus.</p>\
<ul><li><a href=\"/metrics\">/metrics</a>: the exposition (OpenMetrics when asked for)</li>\
<li><a href=\"/healthz\">/healthz</a>: ok while the drop probe is readable</li></ul>\
</body></html>\n";
