//! The TCP transport: in-process nodes talking over real loopback sockets.

mod cluster;
