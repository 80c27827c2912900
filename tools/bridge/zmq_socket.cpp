// shmring-bridge: ZeroMQ socket setup and connection events.
#include <unistd.h>
#include <zmq.h>

#include <cstring>
#include <string>

#include "bridge.hpp"

namespace shmring::bridge_tool {

Zmq::~Zmq() {
  if (mon) zmq_close(mon);
  if (sock) zmq_close(sock);
  if (ctx) zmq_ctx_term(ctx);
}

bool setup_socket(Zmq& z, int type, const Options& o, bool do_bind) {
  z.ctx = zmq_ctx_new();
  z.sock = zmq_socket(z.ctx, type);
  if (!z.sock) {
    log_line("zmq_socket: %s", zmq_strerror(zmq_errno()));
    return false;
  }
  const int hwm = o.hwm;
  zmq_setsockopt(z.sock, type == ZMQ_PUSH ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm, sizeof hwm);
  const int linger = type == ZMQ_PUSH ? o.linger_ms : 0;
  zmq_setsockopt(z.sock, ZMQ_LINGER, &linger, sizeof linger);
  const int reconnect = 100;
  zmq_setsockopt(z.sock, ZMQ_RECONNECT_IVL, &reconnect, sizeof reconnect);
  const int reconnect_max = 1000;
  zmq_setsockopt(z.sock, ZMQ_RECONNECT_IVL_MAX, &reconnect_max, sizeof reconnect_max);
  // ZMQ_IMMEDIATE stays 0: a connecting PUSH keeps its pipe (and the
  // batches queued in it, at most SNDHWM) across a reconnect, so a cut link
  // loses only what was already in the TCP connection.
  if (o.heartbeat_ms > 0) {
    const int ivl = o.heartbeat_ms, timeout = 4 * o.heartbeat_ms;
    zmq_setsockopt(z.sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(z.sock, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
    zmq_setsockopt(z.sock, ZMQ_HEARTBEAT_TTL, &timeout, sizeof timeout);
  }
  const std::string mon_ep = "inproc://monitor." + std::to_string(getpid());
  if (zmq_socket_monitor(z.sock, mon_ep.c_str(),
                         ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                             ZMQ_EVENT_CONNECT_RETRIED) == 0) {
    z.mon = zmq_socket(z.ctx, ZMQ_PAIR);
    if (z.mon && zmq_connect(z.mon, mon_ep.c_str()) != 0) {
      zmq_close(z.mon);
      z.mon = nullptr;
    }
  }
  const int rc = do_bind ? zmq_bind(z.sock, o.endpoint.c_str()) : zmq_connect(z.sock, o.endpoint.c_str());
  if (rc != 0) {
    log_line("cannot %s %s: %s", do_bind ? "bind" : "connect to", o.endpoint.c_str(), zmq_strerror(zmq_errno()));
    return false;
  }
  if (do_bind) {  // names the port when ENDPOINT asked for any (tcp://host:*)
    char ep[256] = {};
    std::size_t n = sizeof ep - 1;
    if (zmq_getsockopt(z.sock, ZMQ_LAST_ENDPOINT, ep, &n) == 0) log_line("listening on %s", ep);
  }
  return true;
}

void poll_events(Zmq& z) {
  if (!z.mon) return;
  for (;;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, z.mon, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m);
      return;
    }
    std::uint16_t event = 0;
    if (zmq_msg_size(&m) >= 6) std::memcpy(&event, zmq_msg_data(&m), sizeof event);
    const bool more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    if (more) {  // second frame: the endpoint address
      zmq_msg_init(&m);
      zmq_msg_recv(&m, z.mon, 0);
      zmq_msg_close(&m);
    }
    if (event == ZMQ_EVENT_CONNECTED || event == ZMQ_EVENT_ACCEPTED) {
      ++z.connects;
      if (z.connects > 1) log_line("peer connected again (%llu reconnects)", (unsigned long long)(z.connects - 1));
      z.warned_unreachable = false;
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
      ++z.disconnects;
      log_line("peer disconnected");
    } else if (event == ZMQ_EVENT_CONNECT_RETRIED) {
      ++z.retries;
      if (!z.warned_unreachable) {
        log_line("cannot reach the peer yet; retrying");
        z.warned_unreachable = true;
      }
    }
  }
}

}  // namespace shmring::bridge_tool
