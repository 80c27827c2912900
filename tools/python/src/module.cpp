// shmring for Python: a thin binding of the C API (include/shmring/shmring.h).
//
// Zero-copy views and their lifetime (docs/python.md):
//   peek() and reserve() hand out a memoryview over a RecordBuffer, a small
//   exporter object that points into the ring. Every buffer taken from it (the
//   memoryview, its slices, a numpy array made from either) is counted in
//   RecordBuffer::exports. release() / commit() first release the memoryviews
//   this handle gave out, then refuse (BufferError, record kept) while any
//   export is still alive; only then is the C call made and the exporter's
//   pointer cleared, so no Python object can reach the record's bytes once
//   the ring may reuse them. The exporter holds a reference to its handle, so
//   the handle (and the mapping) outlives every view; close() refuses while a
//   view is alive.
//
// Threads: a handle belongs to one thread at a time (shmring.h). Blocking
// calls release the GIL, so a handle carries a busy flag, set and tested
// under the GIL: a second thread entering the same handle meanwhile gets
// RuntimeError instead of undefined behaviour.
#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shmring/shmring.h"
#include "shmring/version.hpp"

namespace py = pybind11;

namespace {

// ---- Exceptions ------------------------------------------------------------

std::map<int, PyObject*> g_error_classes;  // code -> class (strong refs, module lifetime)
PyObject* g_error_base = nullptr;

[[noreturn]] void raise_code(int code, const std::string& context) {
  PyObject* cls = g_error_base;
  if (auto it = g_error_classes.find(code); it != g_error_classes.end()) cls = it->second;
  std::string msg = shmring_strerror(code);
  if (!context.empty()) msg = context + ": " + msg;
  PyObject* exc = PyObject_CallFunction(cls, "s", msg.c_str());
  if (exc == nullptr) throw py::error_already_set();
  PyObject* c = PyLong_FromLong(code);
  if (c == nullptr || PyObject_SetAttrString(exc, "code", c) != 0) {
    Py_XDECREF(c);
    Py_DECREF(exc);
    throw py::error_already_set();
  }
  Py_DECREF(c);
  PyErr_SetObject(cls, exc);
  Py_DECREF(exc);
  throw py::error_already_set();
}

// Setup calls (create, open, unlink) carry a detailed message naming the ring.
[[noreturn]] void raise_setup(int code) { raise_code(code, shmring_last_error()); }

// ---- Timeouts --------------------------------------------------------------

// None: forever (-1); 0: try once; seconds (float) otherwise; inf: forever.
int64_t to_timeout_ns(const std::optional<double>& t) {
  if (!t) return -1;
  const double s = *t;
  if (std::isnan(s) || s < 0) raise_code(SHMRING_EINVAL, "timeout must be None or >= 0 seconds");
  if (std::isinf(s)) return -1;
  const double ns = std::ceil(s * 1e9);
  if (ns >= 9.2e18) return -1;
  return static_cast<int64_t>(ns);
}

// Blocking waits are cut into slices so that a signal (Ctrl-C) is seen
// between them; each slice runs without the GIL. The library returns
// ETIMEDOUT at the end of a slice with nothing consumed or produced, so the
// call is simply made again with what is left of the deadline.
constexpr int64_t kSliceNs = 100'000'000;  // 100 ms

template <class F>
int wait_loop(int64_t timeout_ns, F&& call) {
  if (timeout_ns == 0) return call(int64_t{0});
  using clock = std::chrono::steady_clock;
  const bool forever = timeout_ns < 0;
  const auto deadline = forever ? clock::time_point::max() : clock::now() + std::chrono::nanoseconds(timeout_ns);
  for (;;) {
    int64_t slice = kSliceNs;
    if (!forever) {
      const int64_t left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - clock::now()).count();
      if (left <= 0) return SHMRING_ETIMEDOUT;
      slice = std::min(slice, left);
    }
    int rc;
    {
      py::gil_scoped_release nogil;
      rc = call(slice);
    }
    if (rc != SHMRING_ETIMEDOUT) return rc;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (!forever && clock::now() >= deadline) return SHMRING_ETIMEDOUT;
  }
}

// ---- RecordBuffer: the exporter behind peek()/reserve() views ---------------

class Handle;
void handle_forget_exporter(Handle* h, struct RecordBuffer* rb);

struct RecordBuffer {
  PyObject_HEAD
  PyObject* owner;  // the Producer/Consumer: keeps the handle and the mapping alive
  Handle* handle;   // owner's C++ object, told when this exporter dies
  void* ptr;        // nullptr once released/committed
  Py_ssize_t len;
  int readonly;
  Py_ssize_t exports;
};

int rb_getbuffer(PyObject* self, Py_buffer* view, int flags) {
  auto* rb = reinterpret_cast<RecordBuffer*>(self);
  if (rb->ptr == nullptr) {
    PyErr_SetString(PyExc_BufferError, "shmring: the record was released or committed; its view is gone");
    view->obj = nullptr;
    return -1;
  }
  if (PyBuffer_FillInfo(view, self, rb->ptr, rb->len, rb->readonly, flags) != 0) return -1;
  ++rb->exports;
  return 0;
}

void rb_releasebuffer(PyObject* self, Py_buffer*) { --reinterpret_cast<RecordBuffer*>(self)->exports; }

void rb_dealloc(PyObject* self) {
  auto* rb = reinterpret_cast<RecordBuffer*>(self);
  if (rb->handle != nullptr) handle_forget_exporter(rb->handle, rb);
  Py_XDECREF(rb->owner);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(type);  // instances of a heap type hold a reference to it
}

PyTypeObject* g_record_buffer_type = nullptr;

PyType_Slot rb_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(rb_dealloc)},
    {Py_bf_getbuffer, reinterpret_cast<void*>(rb_getbuffer)},
    {Py_bf_releasebuffer, reinterpret_cast<void*>(rb_releasebuffer)},
    {Py_tp_doc, const_cast<char*>("Exporter of one record's bytes inside a ring (internal).")},
    {0, nullptr},
};
PyType_Spec rb_spec = {"shmring._RecordBuffer", sizeof(RecordBuffer), 0, Py_TPFLAGS_DEFAULT, rb_slots};

// ---- Handles ---------------------------------------------------------------

class Handle {
 public:
  Handle(std::string name, shmring_role role) : name_(std::move(name)), role_(role) {
    int rc;
    {
      py::gil_scoped_release nogil;
      rc = shmring_open(name_.c_str(), role_, &r_);
    }
    if (rc != SHMRING_OK) raise_setup(rc);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    // Every exporter holds a reference to this handle's Python object, so
    // none is alive here.
    shmring_close(r_);
  }

  void forget_exporter(RecordBuffer* rb) {
    if (exporter_ == rb) exporter_ = nullptr;
  }

  const std::string& name() const { return name_; }
  bool closed() const { return r_ == nullptr; }

  void close() {
    if (r_ == nullptr) return;
    enter();
    Exit ex{this};
    invalidate_views("close()");
    shmring_close(r_);
    r_ = nullptr;
  }

  size_t max_record() {
    check_open();
    return shmring_max_record(r_);
  }

  // -- producer --
  py::memoryview reserve(py::object self, size_t n, std::optional<double> timeout) {
    const int64_t t = to_timeout_ns(timeout);
    enter();
    Exit ex{this};
    invalidate_views("reserve()");  // a new reservation replaces an uncommitted one
    void* buf = nullptr;
    int rc = wait_loop(t, [&](int64_t s) { return shmring_reserve(r_, n, &buf, s); });
    if (rc != SHMRING_OK) raise_code(rc, name_);
    return make_view(self, buf, n, false);
  }

  void commit(size_t n, bool deferred) {
    enter();
    Exit ex{this};
    invalidate_views(deferred ? "commit_deferred()" : "commit()");
    int rc = deferred ? shmring_commit_deferred(r_, n) : shmring_commit(r_, n);
    if (rc != SHMRING_OK) raise_code(rc, name_);
  }

  void send(py::buffer data, std::optional<double> timeout) {
    const int64_t t = to_timeout_ns(timeout);
    py::buffer_info info = data.request();  // C-contiguous bytes
    if (info.ndim > 1 && !PyBuffer_IsContiguous(info.view(), 'C'))
      raise_code(SHMRING_EINVAL, "send() needs a C-contiguous buffer");
    const size_t n = static_cast<size_t>(info.size) * static_cast<size_t>(info.itemsize);
    enter();
    Exit ex{this};
    invalidate_views("send()");
    const void* p = info.ptr;
    int rc = wait_loop(t, [&](int64_t s) { return shmring_send(r_, p, n, s); });
    if (rc != SHMRING_OK) raise_code(rc, name_);
  }

  void flush() {
    enter();
    Exit ex{this};
    int rc = shmring_flush(r_);
    if (rc != SHMRING_OK) raise_code(rc, name_);
  }

  // -- consumer --
  py::memoryview peek(py::object self, std::optional<double> timeout) {
    const int64_t t = to_timeout_ns(timeout);
    enter();
    Exit ex{this};
    if (exporter_ != nullptr && exporter_->ptr != nullptr) {
      // The record is still held: the library would return it again.
      return make_view(self, exporter_->ptr, static_cast<size_t>(exporter_->len), true);
    }
    const void* buf = nullptr;
    size_t n = 0;
    int rc = wait_loop(t, [&](int64_t s) { return shmring_peek(r_, &buf, &n, s); });
    if (rc != SHMRING_OK) raise_code(rc, name_);
    return make_view(self, const_cast<void*>(buf), n, true);
  }

  void release(bool deferred) {
    enter();
    Exit ex{this};
    invalidate_views(deferred ? "release_deferred()" : "release()");
    int rc = deferred ? shmring_release_deferred(r_) : shmring_release(r_);
    if (rc != SHMRING_OK) raise_code(rc, name_);
  }

  py::bytes recv(std::optional<double> timeout) {
    const int64_t t = to_timeout_ns(timeout);
    enter();
    Exit ex{this};
    check_no_view("recv()");
    const void* buf = nullptr;
    size_t n = 0;
    int rc = wait_loop(t, [&](int64_t s) { return shmring_peek(r_, &buf, &n, s); });
    if (rc != SHMRING_OK) raise_code(rc, name_);
    py::bytes out(static_cast<const char*>(buf), n);  // the copy, under the GIL
    rc = shmring_release(r_);
    if (rc != SHMRING_OK) raise_code(rc, name_);
    return out;
  }

  size_t recv_into(py::buffer dst, std::optional<double> timeout) {
    const int64_t t = to_timeout_ns(timeout);
    py::buffer_info info = dst.request(true);
    if (!PyBuffer_IsContiguous(info.view(), 'C')) raise_code(SHMRING_EINVAL, "recv_into() needs a C-contiguous buffer");
    const size_t cap = static_cast<size_t>(info.size) * static_cast<size_t>(info.itemsize);
    enter();
    Exit ex{this};
    check_no_view("recv_into()");
    size_t n = 0;
    void* p = info.ptr;
    int rc = wait_loop(t, [&](int64_t s) { return shmring_recv(r_, p, cap, &n, s); });
    if (rc == SHMRING_ETOOBIG)
      raise_code(rc, name_ + ": record of " + std::to_string(n) + " bytes, buffer of " + std::to_string(cap));
    if (rc != SHMRING_OK) raise_code(rc, name_);
    return n;
  }

 private:
  struct Exit {
    Handle* h;
    ~Exit() { h->busy_ = false; }
  };

  void check_open() const {
    if (r_ == nullptr) raise_code(SHMRING_EINVAL, name_ + ": the handle is closed");
  }

  void enter() {
    check_open();
    if (busy_) throw std::runtime_error("shmring: handle used by two threads at once (one thread at a time)");
    busy_ = true;
  }

  py::memoryview make_view(py::object self, void* p, size_t n, bool readonly) {
    const bool fresh = exporter_ == nullptr || exporter_->ptr != p;
    if (fresh) {
      drop_exporter();
      auto* rb = PyObject_New(RecordBuffer, g_record_buffer_type);
      if (rb == nullptr) throw py::error_already_set();
      rb->owner = self.release().ptr();
      rb->handle = this;
      rb->ptr = p;
      rb->len = static_cast<Py_ssize_t>(n);
      rb->readonly = readonly ? 1 : 0;
      rb->exports = 0;
      exporter_ = rb;
    }
    // The new exporter's only strong reference is taken by the memoryview.
    PyObject* obj = reinterpret_cast<PyObject*>(exporter_);
    PyObject* mv = PyMemoryView_FromObject(obj);
    if (fresh) Py_DECREF(obj);
    if (mv == nullptr) throw py::error_already_set();
    auto view = py::reinterpret_steal<py::memoryview>(mv);
    PyObject* ref = PyWeakref_NewRef(mv, nullptr);
    if (ref == nullptr) throw py::error_already_set();
    views_.push_back(py::reinterpret_steal<py::object>(ref));
    return view;
  }

  // Releases the memoryviews this handle gave out; refuses, before touching
  // any of them, while a buffer taken from them (a slice, a numpy array, a
  // nested memoryview, memoryview(view.obj)) is alive. Each memoryview handed
  // out has its own managed buffer holding one export of the exporter; its
  // slices and the memoryviews made from it share that managed buffer, and
  // consumers of the buffer protocol (numpy) count in the view's exports.
  void invalidate_views(const char* what) {
    Py_ssize_t own = 0;
    for (auto& ref : views_) {
      PyObject* v = PyWeakref_GetObject(ref.ptr());  // borrowed; None when dead
      if (v == Py_None) continue;
      auto* mv = reinterpret_cast<PyMemoryViewObject*>(v);
      if (mv->flags & _Py_MEMORYVIEW_RELEASED) continue;
      if (mv->exports != 0 || mv->mbuf->exports != 1) throw_buffer_error(what);
      ++own;
    }
    if (exporter_ != nullptr && exporter_->exports != own) throw_buffer_error(what);
    for (auto& ref : views_) {
      PyObject* v = PyWeakref_GetObject(ref.ptr());
      if (v == Py_None) continue;
      PyObject* res = PyObject_CallMethod(v, "release", nullptr);
      if (res == nullptr) throw py::error_already_set();  // not expected after the checks
      Py_DECREF(res);
    }
    views_.clear();
    if (exporter_ != nullptr && exporter_->exports != 0) throw_buffer_error(what);
    drop_exporter();
  }

  void check_no_view(const char* what) {
    if (exporter_ != nullptr && exporter_->ptr != nullptr)
      throw py::value_error(std::string("shmring: ") + what + " while a peeked record is held; call release() first");
  }

  [[noreturn]] void throw_buffer_error(const char* what) {
    PyErr_Format(PyExc_BufferError,
                 "shmring %s: %s refused: a view of the record is still in use (a slice, a numpy array, ...); "
                 "delete it first",
                 name_.c_str(), what);
    throw py::error_already_set();
  }

  // Cuts the exporter loose: any later getbuffer on it fails. Views still
  // alive (only possible when a new record replaces a dropped one) keep
  // their reference; nothing reads the pointer any more.
  void drop_exporter() {
    if (exporter_ == nullptr) return;
    exporter_->ptr = nullptr;
    exporter_->handle = nullptr;
    exporter_ = nullptr;
  }

  std::string name_;
  shmring_role role_;
  shmring_t* r_ = nullptr;
  bool busy_ = false;
  RecordBuffer* exporter_ = nullptr;  // borrowed: cleared by the exporter's dealloc
  std::vector<py::object> views_;     // weak references to the memoryviews handed out
};

void handle_forget_exporter(Handle* h, RecordBuffer* rb) { h->forget_exporter(rb); }

class Producer : public Handle {
 public:
  explicit Producer(const std::string& name) : Handle(name, SHMRING_PRODUCER) {}
};
class Consumer : public Handle {
 public:
  explicit Consumer(const std::string& name) : Handle(name, SHMRING_CONSUMER) {}
};

shmring_kind parse_kind(const std::string& s) {
  if (s == "spsc") return SHMRING_SPSC;
  if (s == "mpmc") return SHMRING_MPMC;
  if (s == "locked") return SHMRING_LOCKED;
  raise_code(SHMRING_EINVAL, "unknown kind '" + s + "' (spsc, mpmc, locked)");
}

shmring_wait parse_wait(const std::string& s) {
  if (s == "futex") return SHMRING_WAIT_FUTEX;
  if (s == "spin") return SHMRING_WAIT_SPIN;
  if (s == "sem") return SHMRING_WAIT_SEM;
  raise_code(SHMRING_EINVAL, "unknown wait strategy '" + s + "' (futex, spin, sem)");
}

void create(const std::string& name, const std::string& kind, size_t capacity, const std::string& wait,
            size_t slot_size, unsigned mode) {
  shmring_config cfg{};
  cfg.kind = parse_kind(kind);
  cfg.wait = parse_wait(wait);
  cfg.capacity = capacity;
  cfg.slot_size = slot_size;
  cfg.mode = mode;
  int rc;
  {
    py::gil_scoped_release nogil;
    rc = shmring_create(name.c_str(), &cfg);
  }
  if (rc != SHMRING_OK) raise_setup(rc);
}

void unlink_ring(const std::string& name) {
  int rc = shmring_unlink(name.c_str());
  if (rc != SHMRING_OK) raise_setup(rc);
}

template <class H>
void bind_common(py::class_<H>& c) {
  c.def_property_readonly("name", &H::name)
      .def_property_readonly("closed", &H::closed)
      .def_property_readonly("max_record", &H::max_record)
      .def("close", &H::close)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](H& h, py::args) {
        h.close();
        return false;
      });
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "shmring: zero-copy ring buffers in POSIX shared memory (native part)";

  g_record_buffer_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&rb_spec));
  if (g_record_buffer_type == nullptr) throw py::error_already_set();

  // shmring.Error and one subclass per C return code.
  g_error_base = PyErr_NewExceptionWithDoc("shmring.Error", "Base of every shmring error; .code is the C return code.",
                                           nullptr, nullptr);
  if (g_error_base == nullptr) throw py::error_already_set();
  PyObject_SetAttrString(g_error_base, "code", Py_None);
  m.add_object("Error", py::handle(g_error_base));
  struct Def {
    const char* name;
    int code;
  };
  static const Def defs[] = {
      {"WouldBlock", SHMRING_EWOULDBLOCK}, {"Timeout", SHMRING_ETIMEDOUT},
      {"PeerGone", SHMRING_EPEERGONE},     {"Busy", SHMRING_EBUSY},
      {"Exists", SHMRING_EEXIST},          {"NotFound", SHMRING_ENOENT},
      {"PermissionDenied", SHMRING_EPERM}, {"Corrupt", SHMRING_ECORRUPT},
      {"VersionMismatch", SHMRING_EVERSION}, {"TooBig", SHMRING_ETOOBIG},
      {"Reset", SHMRING_ERESET},           {"InvalidArgument", SHMRING_EINVAL},
      {"NoSpace", SHMRING_ENOSPC},         {"SystemFailure", SHMRING_ESYSTEM},
  };
  for (const Def& d : defs) {
    std::string qual = std::string("shmring.") + d.name;
    PyObject* cls = PyErr_NewException(qual.c_str(), g_error_base, nullptr);
    if (cls == nullptr) throw py::error_already_set();
    PyObject* code = PyLong_FromLong(d.code);
    PyObject_SetAttrString(cls, "code", code);
    Py_DECREF(code);
    g_error_classes[d.code] = cls;
    m.add_object(d.name, py::handle(cls));
  }
  // Codes as plain integers, named as in C without the prefix.
  m.attr("OK") = int{SHMRING_OK};
  m.attr("EWOULDBLOCK") = int{SHMRING_EWOULDBLOCK};
  m.attr("ETIMEDOUT") = int{SHMRING_ETIMEDOUT};
  m.attr("EPEERGONE") = int{SHMRING_EPEERGONE};
  m.attr("EBUSY") = int{SHMRING_EBUSY};
  m.attr("EEXIST") = int{SHMRING_EEXIST};
  m.attr("ENOENT") = int{SHMRING_ENOENT};
  m.attr("EPERM") = int{SHMRING_EPERM};
  m.attr("ECORRUPT") = int{SHMRING_ECORRUPT};
  m.attr("EVERSION") = int{SHMRING_EVERSION};
  m.attr("ETOOBIG") = int{SHMRING_ETOOBIG};
  m.attr("ERESET") = int{SHMRING_ERESET};
  m.attr("EINVAL") = int{SHMRING_EINVAL};
  m.attr("ENOSPC") = int{SHMRING_ENOSPC};
  m.attr("ESYSTEM") = int{SHMRING_ESYSTEM};
  m.attr("__version__") = std::to_string(shmring::kVersionMajor) + "." + std::to_string(shmring::kVersionMinor) + "." +
                          std::to_string(shmring::kVersionPatch);
  m.attr("LAYOUT_VERSION") = shmring::kLayoutVersion;

  m.def("create", &create, py::arg("name"), py::arg("kind") = "spsc", py::arg("capacity") = size_t{1} << 20,
        py::arg("wait") = "futex", py::arg("slot_size") = 0, py::arg("mode") = 0600);
  m.def("unlink", &unlink_ring, py::arg("name"));
  m.def("strerror", &shmring_strerror, py::arg("code"));

  py::class_<Producer> prod(m, "Producer");
  prod.def(py::init<const std::string&>(), py::arg("name"))
      .def(
          "reserve",
          [](py::object self, size_t n, std::optional<double> timeout) {
            return self.cast<Producer&>().reserve(self, n, timeout);
          },
          py::arg("n"), py::arg("timeout") = py::none())
      .def("commit", [](Producer& p, size_t n) { p.commit(n, false); }, py::arg("n"))
      .def("commit_deferred", [](Producer& p, size_t n) { p.commit(n, true); }, py::arg("n"))
      .def("send", &Producer::send, py::arg("data"), py::arg("timeout") = py::none())
      .def("flush", &Producer::flush);
  bind_common(prod);

  py::class_<Consumer> cons(m, "Consumer");
  cons.def(py::init<const std::string&>(), py::arg("name"))
      .def(
          "peek",
          [](py::object self, std::optional<double> timeout) { return self.cast<Consumer&>().peek(self, timeout); },
          py::arg("timeout") = py::none())
      .def("release", [](Consumer& c) { c.release(false); })
      .def("release_deferred", [](Consumer& c) { c.release(true); })
      .def("recv", &Consumer::recv, py::arg("timeout") = py::none())
      .def("recv_into", &Consumer::recv_into, py::arg("buffer"), py::arg("timeout") = py::none())
      .def("flush", &Consumer::flush);
  bind_common(cons);
}
