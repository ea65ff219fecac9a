//! Benchmark traffic: one TCP stream for SECS seconds, as fast as the
//! kernel takes it. `tcpstream serve PORT SECS` accepts one connection and
//! prints the bytes/s it received; `tcpstream send DST_IP:PORT SECS` writes
//! 64 KiB buffers until SECS pass. Used by bench/trace inside namespaces the
//! script created; never point it anywhere else.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: tcpstream serve PORT SECS | tcpstream send DST_IP:PORT SECS";
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).expect(usage);
    match args.first().map(String::as_str) {
        Some("serve") => {
            let port: u16 = args[1].parse().expect(usage);
            let l = TcpListener::bind(("0.0.0.0", port)).expect("bind");
            let (mut c, _) = l.accept().expect("accept");
            let mut buf = vec![0u8; 1 << 16];
            let start = Instant::now();
            let mut total: u64 = 0;
            while let Ok(n) = c.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            let t = start.elapsed().as_secs_f64().max(secs.min(1e-3));
            println!("{}", (total as f64 / t) as u64);
        }
        Some("send") => {
            let dst: SocketAddr = args[1].parse().expect(usage);
            let mut c = TcpStream::connect_timeout(&dst, Duration::from_secs(5)).expect("connect");
            let buf = vec![0u8; 1 << 16];
            let end = Instant::now() + Duration::from_secs_f64(secs);
            while Instant::now() < end {
                if c.write_all(&buf).is_err() {
                    break;
                }
            }
        }
        _ => panic!("{usage}"),
    }
}
