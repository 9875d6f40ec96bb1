/**
 * Connections the kernel may hold for accept(), for the gateway and the simulator alike. Node's 511
 * overflowed when 2,048 clients connected within seconds while the front thread was busy
 * (ListenDrops, then SYN retries of 1 s and more); the kernel caps it at net.core.somaxconn.
 */
export const LISTEN_BACKLOG = 4_096
