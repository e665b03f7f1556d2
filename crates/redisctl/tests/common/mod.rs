//! What the integration tests against real redis-server processes share.

use std::net::TcpListener;

/// Where every test process listens.
pub const HOST: &str = "127.0.0.1";

/// Free ports: all listeners are held until every port is chosen, so they differ.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind((HOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    let mut ports = [0; N];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr().expect("local addr").port();
    }
    ports
}
