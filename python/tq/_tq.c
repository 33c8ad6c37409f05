/*
 * _tq.c — the CPython extension module tq._tq: a thin layer over the public
 * C API in include/tq.h (no second implementation).
 *
 * Conventions
 *   - Inputs arrive through the buffer protocol (C-contiguous, with a format):
 *     float32 'f', uint8 'B', int64 'q'/'l' (8 bytes). Outputs are allocated by
 *     the Python layer (numpy.empty) and passed in as writable buffers; every
 *     length is checked here against the shapes the call implies.
 *   - Every failing tq call raises tq.TQError carrying tq_status_str() and
 *     tq_last_error() (read on the calling thread, right after the call).
 *   - The GIL is released around every call that may take long (create,
 *     encode, decode, score, index add/search/remove, kv append/attend,
 *     file I/O).
 *   - Index and KV cache handles carry a reader-writer lock, taken with the
 *     GIL released. The C index and cache lock themselves too (tq.h); this
 *     one also covers the wrapper's own steps around a call (shape reads,
 *     the handle's lifetime).
 *   - A quantizer handle borrowed from an index keeps a reference to the index
 *     handle, which owns the quantizer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "tq.h"

/* ------------------------------------------------------------------ errors */

static PyObject *TQError; /* set in module init; tq.TQError */

static const char *status_name(tq_status s) {
    switch (s) {
    case TQ_OK: return "TQ_OK";
    case TQ_ERR_INVALID_ARG: return "TQ_ERR_INVALID_ARG";
    case TQ_ERR_DIM: return "TQ_ERR_DIM";
    case TQ_ERR_BITS: return "TQ_ERR_BITS";
    case TQ_ERR_NONFINITE: return "TQ_ERR_NONFINITE";
    case TQ_ERR_SIZE: return "TQ_ERR_SIZE";
    case TQ_ERR_NOMEM: return "TQ_ERR_NOMEM";
    case TQ_ERR_IO: return "TQ_ERR_IO";
    case TQ_ERR_FORMAT: return "TQ_ERR_FORMAT";
    case TQ_ERR_CHECKSUM: return "TQ_ERR_CHECKSUM";
    case TQ_ERR_VERSION: return "TQ_ERR_VERSION";
    case TQ_ERR_STATE: return "TQ_ERR_STATE";
    case TQ_ERR_MISMATCH: return "TQ_ERR_MISMATCH";
    }
    return "TQ_ERR_UNKNOWN";
}

/* Raise TQError for status s with the detail tq_last_error() holds on this
 * thread. Must be called on the thread that made the failing call, before any
 * other tq call. Always returns NULL. */
static PyObject *raise_tq(tq_status s) {
    const char *detail = tq_last_error();
    if (!detail) detail = "";
    PyObject *msg = detail[0] ? PyUnicode_FromFormat("%s: %s", tq_status_str(s), detail)
                              : PyUnicode_FromString(tq_status_str(s));
    if (!msg) return NULL;
    PyObject *exc = PyObject_CallFunctionObjArgs(TQError, msg, NULL);
    Py_DECREF(msg);
    if (!exc) return NULL;
    PyObject *name = PyUnicode_FromString(status_name(s));
    PyObject *code = PyLong_FromLong((long)s);
    PyObject *det = PyUnicode_FromString(detail);
    int bad = !name || !code || !det || PyObject_SetAttrString(exc, "status", name) < 0 ||
              PyObject_SetAttrString(exc, "code", code) < 0 || PyObject_SetAttrString(exc, "detail", det) < 0;
    Py_XDECREF(name);
    Py_XDECREF(code);
    Py_XDECREF(det);
    if (bad) {
        Py_DECREF(exc);
        return NULL;
    }
    PyErr_SetObject(TQError, exc);
    Py_DECREF(exc);
    return NULL;
}

/* ------------------------------------------------------------ conversions */

static int conv_u64(PyObject *o, void *p) {
    PyObject *i = PyNumber_Index(o);
    if (!i) return 0;
    unsigned long long v = PyLong_AsUnsignedLongLong(i);
    Py_DECREF(i);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return 0;
    *(uint64_t *)p = (uint64_t)v;
    return 1;
}

static int conv_u32(PyObject *o, void *p) {
    uint64_t v;
    if (!conv_u64(o, &v)) return 0;
    if (v > UINT32_MAX) {
        PyErr_Format(PyExc_OverflowError, "%llu does not fit in 32 bits", (unsigned long long)v);
        return 0;
    }
    *(uint32_t *)p = (uint32_t)v;
    return 1;
}

static int conv_size(PyObject *o, void *p) {
    uint64_t v;
    if (!conv_u64(o, &v)) return 0;
    if (v > (uint64_t)SIZE_MAX) {
        PyErr_SetString(PyExc_OverflowError, "count does not fit in size_t");
        return 0;
    }
    *(size_t *)p = (size_t)v;
    return 1;
}

/* a * b without overflow (0 on overflow, with OverflowError set) */
static int mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) {
        PyErr_SetString(PyExc_OverflowError, "array size overflows size_t");
        return 0;
    }
    *out = a * b;
    return 1;
}

/* ---------------------------------------------------------------- buffers */

enum { K_F32 = 'f', K_U8 = 'B', K_I64 = 'q' };

static const char *kind_name(int kind) {
    switch (kind) {
    case K_F32: return "float32";
    case K_U8: return "uint8";
    default: return "int64";
    }
}

static int little_endian_host(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* Does a buffer format string describe `kind`? Native ('@', '=', none) or
 * explicitly little-endian on a little-endian host. */
static int format_ok(const char *fmt, Py_ssize_t itemsize, int kind) {
    if (!fmt) fmt = "B";
    if (fmt[0] == '@' || fmt[0] == '=') {
        fmt++;
    } else if (fmt[0] == '<') {
        if (!little_endian_host()) return 0;
        fmt++;
    } else if (fmt[0] == '>' || fmt[0] == '!') {
        if (little_endian_host()) return 0;
        fmt++;
    }
    if (fmt[0] == '\0' || fmt[1] != '\0') return 0;
    switch (kind) {
    case K_F32: return fmt[0] == 'f' && itemsize == 4;
    case K_U8: return fmt[0] == 'B' && itemsize == 1;
    case K_I64: return (fmt[0] == 'q' || fmt[0] == 'l') && itemsize == 8;
    }
    return 0;
}

/* Acquire a C-contiguous buffer of `kind`; 1 on success (release with
 * PyBuffer_Release), 0 with an exception set. */
static int get_buf(PyObject *obj, Py_buffer *view, int kind, int writable, const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s %s buffer (got %.100s)", what,
                     writable ? " writable" : "", kind_name(kind), Py_TYPE(obj)->tp_name);
        return 0;
    }
    if (!format_ok(view->format, view->itemsize, kind)) {
        PyErr_Format(PyExc_TypeError, "%s must hold %s, got buffer format '%s' (itemsize %zd)", what,
                     kind_name(kind), view->format ? view->format : "B", view->itemsize);
        PyBuffer_Release(view);
        return 0;
    }
    return 1;
}

static size_t buf_count(const Py_buffer *v) { return (size_t)(v->len / v->itemsize); }

/* Check that a buffer holds exactly `count` items. */
static int check_count(const Py_buffer *v, size_t count, const char *what) {
    if (buf_count(v) != count) {
        PyErr_Format(PyExc_ValueError, "%s holds %zu values, expected %zu", what, buf_count(v), count);
        return 0;
    }
    return 1;
}

/* Rows of `row` items in a buffer; 0 with ValueError when not a whole number. */
static int rows_of(const Py_buffer *v, size_t row, const char *what, size_t *n) {
    size_t c = buf_count(v);
    if (row == 0 || c % row != 0) {
        PyErr_Format(PyExc_ValueError, "%s holds %zu values, not a whole number of rows of %zu", what, c, row);
        return 0;
    }
    *n = c / row;
    return 1;
}

static void release(Py_buffer *v) {
    if (v->obj) PyBuffer_Release(v);
}

/* Optional int64 buffer: None leaves view->obj NULL. */
static int get_opt_i64(PyObject *obj, Py_buffer *view, const char *what) {
    memset(view, 0, sizeof *view);
    if (obj == Py_None) return 1;
    return get_buf(obj, view, K_I64, 0, what);
}

/* Build a dict from (name, uint64) pairs. */
static PyObject *dict_u64(const char *const *names, const uint64_t *vals, size_t n) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(vals[i]);
        if (!v || PyDict_SetItemString(d, names[i], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    return d;
}

static PyObject *config_dict(const tq_config *c) {
    PyObject *ch;
    if (c->outlier_channels && c->outlier_count) {
        ch = PyTuple_New((Py_ssize_t)c->outlier_count);
        if (!ch) return NULL;
        for (uint32_t i = 0; i < c->outlier_count; i++) {
            PyObject *v = PyLong_FromUnsignedLong(c->outlier_channels[i]);
            if (!v) {
                Py_DECREF(ch);
                return NULL;
            }
            PyTuple_SET_ITEM(ch, i, v);
        }
    } else {
        ch = Py_None;
        Py_INCREF(ch);
    }
    PyObject *d = Py_BuildValue("{s:I,s:I,s:i,s:i,s:I,s:i,s:i,s:K,s:I,s:I,s:N,s:i,s:i,s:I}", "dim", c->dim,
                                "bits", c->bits, "variant", (int)c->variant, "rotation", (int)c->rotation,
                                "rounds", c->rounds, "qjl", (int)c->qjl, "norm", (int)c->norm, "seed",
                                (unsigned long long)c->seed, "outlier_count", c->outlier_count, "outlier_bits",
                                c->outlier_bits, "outlier_channels", ch, "uniform_mode", (int)c->uniform_mode,
                                "uniform_scope", (int)c->uniform_scope, "group_size", c->group_size);
    return d;
}

/* ============================================================ Quantizer */

typedef struct {
    PyObject_HEAD
    tq_quantizer *q;
    PyObject *owner; /* non-NULL: borrowed from this object (an index handle), not freed here */
} QuantizerObject;

static PyTypeObject QuantizerType;

static void Quantizer_dealloc(QuantizerObject *self) {
    if (self->owner) {
        Py_DECREF(self->owner);
    } else {
        tq_quantizer_free(self->q);
    }
    self->q = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *wrap_quantizer(tq_quantizer *q, PyObject *owner) {
    QuantizerObject *o = PyObject_New(QuantizerObject, &QuantizerType);
    if (!o) {
        if (!owner) tq_quantizer_free(q);
        return NULL;
    }
    o->q = q;
    o->owner = owner;
    Py_XINCREF(owner);
    return (PyObject *)o;
}

static PyObject *Quantizer_dim(QuantizerObject *self, PyObject *unused) {
    return PyLong_FromSize_t(tq_quantizer_dim(self->q));
}

static PyObject *Quantizer_code_size(QuantizerObject *self, PyObject *unused) {
    return PyLong_FromSize_t(tq_quantizer_code_size(self->q));
}

static PyObject *Quantizer_bits_per_value(QuantizerObject *self, PyObject *unused) {
    return PyFloat_FromDouble(tq_quantizer_bits_per_value(self->q));
}

static PyObject *Quantizer_config(QuantizerObject *self, PyObject *unused) {
    tq_config c;
    tq_status st = tq_quantizer_get_config(self->q, &c);
    if (st != TQ_OK) return raise_tq(st);
    return config_dict(&c);
}

static PyObject *Quantizer_fingerprint(QuantizerObject *self, PyObject *unused) {
    uint32_t fp = 0;
    tq_status st = tq_quantizer_fingerprint(self->q, &fp);
    if (st != TQ_OK) return raise_tq(st);
    return PyLong_FromUnsignedLong(fp);
}

/* encode(x: float32 buffer (n*dim), out: writable uint8 buffer (n*code_size)) */
static PyObject *Quantizer_encode(QuantizerObject *self, PyObject *args) {
    PyObject *xo, *oo;
    if (!PyArg_ParseTuple(args, "OO:encode", &xo, &oo)) return NULL;
    Py_buffer x = {0}, out = {0};
    PyObject *ret = NULL;
    size_t n, want;
    if (!get_buf(xo, &x, K_F32, 0, "x") || !get_buf(oo, &out, K_U8, 1, "out")) goto done;
    if (!rows_of(&x, tq_quantizer_dim(self->q), "x", &n)) goto done;
    if (!mul_size(n, tq_quantizer_code_size(self->q), &want) || !check_count(&out, want, "out")) goto done;
    tq_status st;
    Py_BEGIN_ALLOW_THREADS
    st = tq_encode(self->q, (const float *)x.buf, n, (uint8_t *)out.buf);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) {
        raise_tq(st);
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    release(&x);
    release(&out);
    return ret;
}

/* decode(codes: uint8 buffer (n*code_size), out: writable float32 buffer (n*dim)) */
static PyObject *Quantizer_decode(QuantizerObject *self, PyObject *args) {
    PyObject *co, *oo;
    if (!PyArg_ParseTuple(args, "OO:decode", &co, &oo)) return NULL;
    Py_buffer c = {0}, out = {0};
    PyObject *ret = NULL;
    size_t n, want;
    if (!get_buf(co, &c, K_U8, 0, "codes") || !get_buf(oo, &out, K_F32, 1, "out")) goto done;
    if (!rows_of(&c, tq_quantizer_code_size(self->q), "codes", &n)) goto done;
    if (!mul_size(n, tq_quantizer_dim(self->q), &want) || !check_count(&out, want, "out")) goto done;
    tq_status st;
    Py_BEGIN_ALLOW_THREADS
    st = tq_decode(self->q, (const uint8_t *)c.buf, n, (float *)out.buf);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) {
        raise_tq(st);
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    release(&c);
    release(&out);
    return ret;
}

/* score(query: float32 (dim), metric: int, codes: uint8 (n*code_size), out: float32 (n)) */
static PyObject *Quantizer_score(QuantizerObject *self, PyObject *args) {
    PyObject *qo, *co, *oo;
    int metric;
    if (!PyArg_ParseTuple(args, "OiOO:score", &qo, &metric, &co, &oo)) return NULL;
    Py_buffer qb = {0}, c = {0}, out = {0};
    PyObject *ret = NULL;
    size_t n;
    if (!get_buf(qo, &qb, K_F32, 0, "query") || !get_buf(co, &c, K_U8, 0, "codes") ||
        !get_buf(oo, &out, K_F32, 1, "out"))
        goto done;
    if (!check_count(&qb, tq_quantizer_dim(self->q), "query")) goto done;
    if (!rows_of(&c, tq_quantizer_code_size(self->q), "codes", &n) || !check_count(&out, n, "out")) goto done;
    tq_status st;
    Py_BEGIN_ALLOW_THREADS
    tq_query *pq = NULL;
    st = tq_query_create(self->q, &pq);
    if (st == TQ_OK) st = tq_query_set(pq, (const float *)qb.buf);
    if (st == TQ_OK) st = tq_score(self->q, pq, (tq_metric)metric, (const uint8_t *)c.buf, n, (float *)out.buf);
    tq_query_free(pq); /* does not touch the error buffer */
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) {
        raise_tq(st);
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    release(&qb);
    release(&c);
    release(&out);
    return ret;
}

static PyObject *Quantizer_save(QuantizerObject *self, PyObject *args) {
    PyObject *path;
    if (!PyArg_ParseTuple(args, "O&:save", PyUnicode_FSConverter, &path)) return NULL;
    tq_status st;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    st = tq_quantizer_save(self->q, p);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (st != TQ_OK) return raise_tq(st);
    Py_RETURN_NONE;
}

static PyObject *Quantizer_serialize(QuantizerObject *self, PyObject *unused) {
    size_t size = 0, written = 0;
    tq_status st = tq_quantizer_serialized_size(self->q, &size);
    if (st != TQ_OK) return raise_tq(st);
    if (size > (size_t)PY_SSIZE_T_MAX) return PyErr_NoMemory();
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!b) return NULL;
    uint8_t *buf = (uint8_t *)PyBytes_AS_STRING(b);
    Py_BEGIN_ALLOW_THREADS
    st = tq_quantizer_serialize(self->q, buf, size, &written);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) {
        Py_DECREF(b);
        return raise_tq(st);
    }
    if (written != size && _PyBytes_Resize(&b, (Py_ssize_t)written) < 0) return NULL;
    return b;
}

/* codes_save(codes: uint8 (n*code_size), path) */
static PyObject *Quantizer_codes_save(QuantizerObject *self, PyObject *args) {
    PyObject *co, *path;
    if (!PyArg_ParseTuple(args, "OO&:codes_save", &co, PyUnicode_FSConverter, &path)) return NULL;
    Py_buffer c = {0};
    PyObject *ret = NULL;
    size_t n;
    if (!get_buf(co, &c, K_U8, 0, "codes") || !rows_of(&c, tq_quantizer_code_size(self->q), "codes", &n)) goto done;
    tq_status st;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    st = tq_codes_save(self->q, (const uint8_t *)c.buf, n, p);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) {
        raise_tq(st);
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    release(&c);
    Py_DECREF(path);
    return ret;
}

/* Move a library-allocated block into a new bytearray (one copy) and tq_free it. */
static PyObject *bytearray_from_tq(void *data, size_t bytes) {
    PyObject *b = NULL;
    if (bytes > (size_t)PY_SSIZE_T_MAX)
        PyErr_NoMemory();
    else
        b = PyByteArray_FromStringAndSize(data ? (const char *)data : "", (Py_ssize_t)bytes);
    tq_free(data);
    return b;
}

/* codes_load(path) -> (bytearray of n*code_size, n) */
static PyObject *Quantizer_codes_load(QuantizerObject *self, PyObject *args) {
    PyObject *path;
    if (!PyArg_ParseTuple(args, "O&:codes_load", PyUnicode_FSConverter, &path)) return NULL;
    uint8_t *codes = NULL;
    size_t n = 0;
    tq_status st;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    st = tq_codes_load(self->q, p, &codes, &n);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (st != TQ_OK) return raise_tq(st);
    PyObject *b = bytearray_from_tq(codes, n * tq_quantizer_code_size(self->q));
    if (!b) return NULL;
    return Py_BuildValue("(Nn)", b, (Py_ssize_t)n);
}

static PyMethodDef Quantizer_methods[] = {
    {"dim", (PyCFunction)Quantizer_dim, METH_NOARGS, "tq_quantizer_dim"},
    {"code_size", (PyCFunction)Quantizer_code_size, METH_NOARGS, "tq_quantizer_code_size"},
    {"bits_per_value", (PyCFunction)Quantizer_bits_per_value, METH_NOARGS, "tq_quantizer_bits_per_value"},
    {"config", (PyCFunction)Quantizer_config, METH_NOARGS, "tq_quantizer_get_config as a dict (enums as ints)"},
    {"fingerprint", (PyCFunction)Quantizer_fingerprint, METH_NOARGS, "tq_quantizer_fingerprint"},
    {"encode", (PyCFunction)Quantizer_encode, METH_VARARGS, "encode(x, out): tq_encode"},
    {"decode", (PyCFunction)Quantizer_decode, METH_VARARGS, "decode(codes, out): tq_decode"},
    {"score", (PyCFunction)Quantizer_score, METH_VARARGS,
     "score(query, metric, codes, out): tq_query_create + tq_query_set + tq_score"},
    {"save", (PyCFunction)Quantizer_save, METH_VARARGS, "save(path): tq_quantizer_save"},
    {"serialize", (PyCFunction)Quantizer_serialize, METH_NOARGS, "tq_quantizer_serialize -> bytes"},
    {"codes_save", (PyCFunction)Quantizer_codes_save, METH_VARARGS, "codes_save(codes, path): tq_codes_save"},
    {"codes_load", (PyCFunction)Quantizer_codes_load, METH_VARARGS,
     "codes_load(path) -> (bytearray, n): tq_codes_load"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject QuantizerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tq._tq.QuantizerHandle",
    .tp_basicsize = sizeof(QuantizerObject),
    .tp_dealloc = (destructor)Quantizer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Owns (or borrows from an index) a tq_quantizer*. Made by quantizer_create / quantizer_load.",
    .tp_methods = Quantizer_methods,
};

/* quantizer_create(dim, bits, variant, rotation, norm, seed, qjl, rounds) */
static PyObject *mod_quantizer_create(PyObject *m, PyObject *args) {
    uint32_t dim, rounds;
    double bits;
    int variant, rotation, norm, qjl;
    uint64_t seed;
    if (!PyArg_ParseTuple(args, "O&diiiO&iO&:quantizer_create", conv_u32, &dim, &bits, &variant, &rotation, &norm,
                          conv_u64, &seed, &qjl, conv_u32, &rounds))
        return NULL;
    tq_config cfg;
    tq_config_init(&cfg, dim, 1);
    tq_status st = tq_config_set_bits(&cfg, bits);
    if (st != TQ_OK) return raise_tq(st);
    cfg.variant = (tq_variant)variant;
    cfg.rotation = (tq_rotation_kind)rotation;
    cfg.norm = (tq_norm_mode)norm;
    cfg.seed = seed;
    cfg.qjl = (tq_qjl_kind)qjl;
    cfg.rounds = rounds;
    tq_quantizer *q = NULL;
    Py_BEGIN_ALLOW_THREADS
    st = tq_quantizer_create(&cfg, &q);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) return raise_tq(st);
    return wrap_quantizer(q, NULL);
}

static PyObject *mod_quantizer_load(PyObject *m, PyObject *args) {
    PyObject *path;
    if (!PyArg_ParseTuple(args, "O&:quantizer_load", PyUnicode_FSConverter, &path)) return NULL;
    tq_quantizer *q = NULL;
    tq_status st;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    st = tq_quantizer_load(p, &q);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (st != TQ_OK) return raise_tq(st);
    return wrap_quantizer(q, NULL);
}

static PyObject *mod_quantizer_deserialize(PyObject *m, PyObject *args) {
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "y*:quantizer_deserialize", &b)) return NULL;
    tq_quantizer *q = NULL;
    tq_status st;
    Py_BEGIN_ALLOW_THREADS
    st = tq_quantizer_deserialize((const uint8_t *)b.buf, (size_t)b.len, &q);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&b);
    if (st != TQ_OK) return raise_tq(st);
    return wrap_quantizer(q, NULL);
}

/* ================================================================ Index */

typedef struct {
    PyObject_HEAD
    tq_index *ix;
    pthread_rwlock_t lock;
} IndexObject;

static PyTypeObject IndexType;

static void Index_dealloc(IndexObject *self) {
    tq_index_free(self->ix);
    self->ix = NULL;
    pthread_rwlock_destroy(&self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *wrap_index(tq_index *ix) {
    IndexObject *o = PyObject_New(IndexObject, &IndexType);
    if (!o) {
        tq_index_free(ix);
        return NULL;
    }
    o->ix = ix;
    if (pthread_rwlock_init(&o->lock, NULL) != 0) {
        o->ix = NULL;
        PyObject_Del(o);
        tq_index_free(ix);
        PyErr_SetString(PyExc_RuntimeError, "pthread_rwlock_init failed");
        return NULL;
    }
    return (PyObject *)o;
}

#define RDLOCK(o) pthread_rwlock_rdlock(&(o)->lock)
#define WRLOCK(o) pthread_rwlock_wrlock(&(o)->lock)
#define UNLOCK(o) pthread_rwlock_unlock(&(o)->lock)

static PyObject *Index_size(IndexObject *self, PyObject *unused) {
    size_t n;
    Py_BEGIN_ALLOW_THREADS
    RDLOCK(self);
    n = tq_index_size(self->ix);
    UNLOCK(self);
    Py_END_ALLOW_THREADS
    return PyLong_FromSize_t(n);
}

static PyObject *Index_dim(IndexObject *self, PyObject *unused) { return PyLong_FromSize_t(tq_index_dim(self->ix)); }

static PyObject *Index_quantizer(IndexObject *self, PyObject *unused) {
    return wrap_quantizer((tq_quantizer *)tq_index_quantizer(self->ix), (PyObject *)self);
}

static PyObject *Index_config(IndexObject *self, PyObject *unused) {
    tq_index_config c;
    tq_status st = tq_index_get_config(self->ix, &c);
    if (st != TQ_OK) return raise_tq(st);
    return Py_BuildValue("{s:N,s:i,s:i,s:I,s:i}", "quant", config_dict(&c.quant), "metric", (int)c.metric,
                         "rerank", (int)c.rerank, "rerank_bits", c.rerank_bits, "center", (int)c.center);
}

static PyObject *Index_memory_usage(IndexObject *self, PyObject *unused) {
    tq_index_memory mu;
    tq_status st;
    Py_BEGIN_ALLOW_THREADS
    RDLOCK(self);
    st = tq_index_memory_usage(self->ix, &mu);
    UNLOCK(self);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) return raise_tq(st);
    static const char *const names[] = {"codes", "rerank", "ids", "total", "mapped"};
    const uint64_t vals[] = {mu.codes, mu.rerank, mu.ids, mu.total, mu.mapped};
    return dict_u64(names, vals, 5);
}

/* add(x: float32 (n*dim), ids: int64 (n) or None, assigned: writable int64 (n)) */
static PyObject *Index_add(IndexObject *self, PyObject *args) {
    PyObject *xo, *io, *ao;
    if (!PyArg_ParseTuple(args, "OOO:add", &xo, &io, &ao)) return NULL;
    Py_buffer x = {0}, ids = {0}, as = {0};
    PyObject *ret = NULL;
    size_t n;
    if (!get_buf(xo, &x, K_F32, 0, "x") || !get_opt_i64(io, &ids, "ids") || !get_buf(ao, &as, K_I64, 1, "assigned"))
        goto done;
    if (!rows_of(&x, tq_index_dim(self->ix), "x", &n)) goto done;
    if ((ids.obj && !check_count(&ids, n, "ids")) || !check_count(&as, n, "assigned")) goto done;
    tq_status st;
    const int64_t *idp = ids.obj ? (const int64_t *)ids.buf : NULL;
    Py_BEGIN_ALLOW_THREADS
    WRLOCK(self);
    st = tq_index_add(self->ix, (const float *)x.buf, n, idp, (int64_t *)as.buf);
    UNLOCK(self);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) {
        raise_tq(st);
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    release(&x);
    release(&ids);
    release(&as);
    return ret;
}

/* remove(ids: int64 (n)) -> removed count */
static PyObject *Index_remove(IndexObject *self, PyObject *args) {
    PyObject *io;
    if (!PyArg_ParseTuple(args, "O:remove", &io)) return NULL;
    Py_buffer ids = {0};
    if (!get_buf(io, &ids, K_I64, 0, "ids")) return NULL;
    size_t removed = 0;
    tq_status st;
    Py_BEGIN_ALLOW_THREADS
    WRLOCK(self);
    st = tq_index_remove(self->ix, (const int64_t *)ids.buf, buf_count(&ids), &removed);
    UNLOCK(self);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&ids);
    if (st != TQ_OK) return raise_tq(st);
    return PyLong_FromSize_t(removed);
}

/* search(queries: float32 (nq*dim), k, shortlist, rerank, ids_out: int64 (nq*k), scores_out: float32 (nq*k)) */
static PyObject *Index_search(IndexObject *self, PyObject *args) {
    PyObject *qo, *io, *so;
    size_t k;
    tq_search_params params;
    memset(&params, 0, sizeof params);
    if (!PyArg_ParseTuple(args, "OO&O&O&OO:search", &qo, conv_size, &k, conv_u32, &params.shortlist, conv_u32,
                          &params.rerank, &io, &so))
        return NULL;
    Py_buffer qb = {0}, ids = {0}, sc = {0};
    PyObject *ret = NULL;
    size_t nq, want;
    if (!get_buf(qo, &qb, K_F32, 0, "queries") || !get_buf(io, &ids, K_I64, 1, "ids") ||
        !get_buf(so, &sc, K_F32, 1, "scores"))
        goto done;
    if (!rows_of(&qb, tq_index_dim(self->ix), "queries", &nq)) goto done;
    if (!mul_size(nq, k, &want) || !check_count(&ids, want, "ids") || !check_count(&sc, want, "scores")) goto done;
    tq_status st;
    Py_BEGIN_ALLOW_THREADS
    RDLOCK(self);
    st = tq_index_search(self->ix, (const float *)qb.buf, nq, k, &params, (int64_t *)ids.buf, (float *)sc.buf);
    UNLOCK(self);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) {
        raise_tq(st);
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    release(&qb);
    release(&ids);
    release(&sc);
    return ret;
}

static PyObject *Index_save(IndexObject *self, PyObject *args) {
    PyObject *path;
    if (!PyArg_ParseTuple(args, "O&:save", PyUnicode_FSConverter, &path)) return NULL;
    tq_status st;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    RDLOCK(self); /* saving only reads the index: searches may run meanwhile */
    st = tq_index_save(self->ix, p);
    UNLOCK(self);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (st != TQ_OK) return raise_tq(st);
    Py_RETURN_NONE;
}

static PyMethodDef Index_methods[] = {
    {"size", (PyCFunction)Index_size, METH_NOARGS, "tq_index_size"},
    {"dim", (PyCFunction)Index_dim, METH_NOARGS, "tq_index_dim"},
    {"quantizer", (PyCFunction)Index_quantizer, METH_NOARGS,
     "tq_index_quantizer: a borrowed handle that keeps this index alive"},
    {"config", (PyCFunction)Index_config, METH_NOARGS, "tq_index_get_config as a dict (enums as ints)"},
    {"memory_usage", (PyCFunction)Index_memory_usage, METH_NOARGS, "tq_index_memory_usage as a dict"},
    {"add", (PyCFunction)Index_add, METH_VARARGS, "add(x, ids_or_None, assigned): tq_index_add"},
    {"remove", (PyCFunction)Index_remove, METH_VARARGS, "remove(ids) -> removed: tq_index_remove"},
    {"search", (PyCFunction)Index_search, METH_VARARGS,
     "search(queries, k, shortlist, rerank, ids, scores): tq_index_search"},
    {"save", (PyCFunction)Index_save, METH_VARARGS, "save(path): tq_index_save"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject IndexType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tq._tq.IndexHandle",
    .tp_basicsize = sizeof(IndexObject),
    .tp_dealloc = (destructor)Index_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Owns a tq_index*. Made by index_create / index_load.",
    .tp_methods = Index_methods,
};

/* index_create(dim, bits, metric, variant, norm, rotation, rerank, rerank_bits, center, center_vector|None, seed) */
static PyObject *mod_index_create(PyObject *m, PyObject *args) {
    uint32_t dim, rerank_bits;
    double bits;
    int metric, variant, norm, rotation, rerank, center;
    PyObject *co;
    uint64_t seed;
    if (!PyArg_ParseTuple(args, "O&diiiiiO&iOO&:index_create", conv_u32, &dim, &bits, &metric, &variant, &norm,
                          &rotation, &rerank, conv_u32, &rerank_bits, &center, &co, conv_u64, &seed))
        return NULL;
    tq_index_config cfg;
    tq_index_config_init(&cfg, dim, 1);
    tq_status st = tq_config_set_bits(&cfg.quant, bits);
    if (st != TQ_OK) return raise_tq(st);
    cfg.quant.variant = (tq_variant)variant;
    cfg.quant.norm = (tq_norm_mode)norm;
    cfg.quant.rotation = (tq_rotation_kind)rotation;
    cfg.quant.seed = seed;
    cfg.metric = (tq_index_metric)metric;
    cfg.rerank = (tq_rerank_kind)rerank;
    if (rerank_bits) cfg.rerank_bits = rerank_bits;
    cfg.center = (tq_center_mode)center;
    Py_buffer cv = {0};
    if (co != Py_None) {
        if (!get_buf(co, &cv, K_F32, 0, "center")) return NULL;
        if (!check_count(&cv, dim, "center")) {
            PyBuffer_Release(&cv);
            return NULL;
        }
        cfg.center_vector = (const float *)cv.buf;
    }
    tq_index *ix = NULL;
    Py_BEGIN_ALLOW_THREADS
    st = tq_index_create(&cfg, &ix);
    Py_END_ALLOW_THREADS
    release(&cv); /* copied at create */
    if (st != TQ_OK) return raise_tq(st);
    return wrap_index(ix);
}

static PyObject *mod_index_load(PyObject *m, PyObject *args) {
    PyObject *path;
    int use_mmap;
    if (!PyArg_ParseTuple(args, "O&p:index_load", PyUnicode_FSConverter, &path, &use_mmap)) return NULL;
    tq_index *ix = NULL;
    tq_status st;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    st = use_mmap ? tq_index_open_mmap(p, &ix) : tq_index_load(p, &ix);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (st != TQ_OK) return raise_tq(st);
    return wrap_index(ix);
}

/* ============================================================= KV cache */

typedef struct {
    PyObject_HEAD
    tq_kv *kv;
    uint32_t kv_heads, head_dim;
    pthread_rwlock_t lock;
} KVObject;

static PyTypeObject KVType;

static void KV_dealloc(KVObject *self) {
    tq_kv_free(self->kv);
    self->kv = NULL;
    pthread_rwlock_destroy(&self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *KV_length(KVObject *self, PyObject *unused) {
    size_t n;
    Py_BEGIN_ALLOW_THREADS
    RDLOCK(self);
    n = tq_kv_length(self->kv);
    UNLOCK(self);
    Py_END_ALLOW_THREADS
    return PyLong_FromSize_t(n);
}

static PyObject *KV_config(KVObject *self, PyObject *unused) {
    tq_kv_config c;
    tq_status st = tq_kv_get_config(self->kv, &c);
    if (st != TQ_OK) return raise_tq(st);
    return Py_BuildValue("{s:I,s:I,s:N,s:N,s:I,s:I,s:I,s:i,s:i,s:i}", "kv_heads", c.kv_heads, "head_dim",
                         c.head_dim, "key", config_dict(&c.key), "value", config_dict(&c.value), "window", c.window,
                         "sinks", c.sinks, "capacity", c.capacity, "factors", (int)c.factors, "outliers",
                         (int)c.outliers, "center", (int)c.center);
}

static PyObject *KV_token_bytes(KVObject *self, PyObject *unused) {
    tq_kv_config c;
    tq_status st = tq_kv_get_config(self->kv, &c);
    if (st != TQ_OK) return raise_tq(st);
    size_t bytes = 0, kb = 0, vb = 0;
    st = tq_kv_token_bytes(&c, &bytes, &kb, &vb);
    if (st != TQ_OK) return raise_tq(st);
    return Py_BuildValue("(nnn)", (Py_ssize_t)bytes, (Py_ssize_t)kb, (Py_ssize_t)vb);
}

static PyObject *KV_memory_usage(KVObject *self, PyObject *unused) {
    tq_kv_memory mu;
    tq_status st;
    Py_BEGIN_ALLOW_THREADS
    RDLOCK(self);
    st = tq_kv_memory_usage(self->kv, &mu);
    UNLOCK(self);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) return raise_tq(st);
    static const char *const names[] = {"tokens",   "compressed", "key_codes",  "value_codes", "window",
                                        "reserved", "quantizers", "centers", "total"};
    const uint64_t vals[] = {mu.tokens,   mu.compressed, mu.key_codes, mu.value_codes, mu.window,
                             mu.reserved, mu.quantizers, mu.centers,   mu.total};
    return dict_u64(names, vals, 9);
}

/* append(keys: float32 (n*H*D), values: float32 (n*H*D)) */
static PyObject *KV_append(KVObject *self, PyObject *args) {
    PyObject *ko, *vo;
    if (!PyArg_ParseTuple(args, "OO:append", &ko, &vo)) return NULL;
    Py_buffer k = {0}, v = {0};
    PyObject *ret = NULL;
    size_t n, row;
    if (!get_buf(ko, &k, K_F32, 0, "keys") || !get_buf(vo, &v, K_F32, 0, "values")) goto done;
    if (!mul_size(self->kv_heads, self->head_dim, &row) || !rows_of(&k, row, "keys", &n) ||
        !check_count(&v, buf_count(&k), "values"))
        goto done;
    tq_status st;
    Py_BEGIN_ALLOW_THREADS
    WRLOCK(self);
    st = tq_kv_append(self->kv, (const float *)k.buf, (const float *)v.buf, n);
    UNLOCK(self);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) {
        raise_tq(st);
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    release(&k);
    release(&v);
    return ret;
}

/* attend(q: float32 (nq*q_heads*D), q_heads, q_pos: int64 (nq) or None, scale, out: float32 (nq*q_heads*D)) */
static PyObject *KV_attend(KVObject *self, PyObject *args) {
    PyObject *qo, *po, *oo;
    uint32_t q_heads;
    float scale;
    if (!PyArg_ParseTuple(args, "OO&OfO:attend", &qo, conv_u32, &q_heads, &po, &scale, &oo)) return NULL;
    Py_buffer qb = {0}, pos = {0}, out = {0};
    PyObject *ret = NULL;
    size_t nq, row;
    if (!get_buf(qo, &qb, K_F32, 0, "q") || !get_opt_i64(po, &pos, "q_pos") || !get_buf(oo, &out, K_F32, 1, "out"))
        goto done;
    if (!mul_size(q_heads, self->head_dim, &row) || !rows_of(&qb, row, "q", &nq)) goto done;
    if ((pos.obj && !check_count(&pos, nq, "q_pos")) || !check_count(&out, buf_count(&qb), "out")) goto done;
    tq_status st;
    const int64_t *pp = pos.obj ? (const int64_t *)pos.buf : NULL;
    Py_BEGIN_ALLOW_THREADS
    RDLOCK(self);
    st = tq_kv_attend(self->kv, (const float *)qb.buf, nq, q_heads, pp, scale, (float *)out.buf);
    UNLOCK(self);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) {
        raise_tq(st);
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    release(&qb);
    release(&pos);
    release(&out);
    return ret;
}

/* logits(q: float32 (q_heads*D), q_heads, ntok, scale, out: float32 (q_heads*ntok)) */
static PyObject *KV_logits(KVObject *self, PyObject *args) {
    PyObject *qo, *oo;
    uint32_t q_heads;
    size_t ntok;
    float scale;
    if (!PyArg_ParseTuple(args, "OO&O&fO:logits", &qo, conv_u32, &q_heads, conv_size, &ntok, &scale, &oo))
        return NULL;
    Py_buffer qb = {0}, out = {0};
    PyObject *ret = NULL;
    size_t want;
    if (!get_buf(qo, &qb, K_F32, 0, "q") || !get_buf(oo, &out, K_F32, 1, "out")) goto done;
    if (!mul_size(q_heads, self->head_dim, &want) || !check_count(&qb, want, "q")) goto done;
    if (!mul_size(q_heads, ntok, &want) || !check_count(&out, want, "out")) goto done;
    tq_status st;
    Py_BEGIN_ALLOW_THREADS
    RDLOCK(self);
    st = tq_kv_logits(self->kv, (const float *)qb.buf, q_heads, ntok, scale, (float *)out.buf);
    UNLOCK(self);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) {
        raise_tq(st);
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    release(&qb);
    release(&out);
    return ret;
}

/* decode(start, n, keys: writable float32 (n*H*D), values: the same): tq_kv_decode */
static PyObject *KV_decode(KVObject *self, PyObject *args) {
    size_t start, n;
    PyObject *ko, *vo;
    if (!PyArg_ParseTuple(args, "O&O&OO:decode", conv_size, &start, conv_size, &n, &ko, &vo)) return NULL;
    Py_buffer kb = {0}, vb = {0};
    PyObject *ret = NULL;
    size_t want;
    if (!get_buf(ko, &kb, K_F32, 1, "keys") || !get_buf(vo, &vb, K_F32, 1, "values")) goto done;
    if (!mul_size(n, (size_t)self->kv_heads * self->head_dim, &want) || !check_count(&kb, want, "keys") ||
        !check_count(&vb, want, "values"))
        goto done;
    tq_status st;
    Py_BEGIN_ALLOW_THREADS
    RDLOCK(self);
    st = tq_kv_decode(self->kv, start, n, (float *)kb.buf, (float *)vb.buf);
    UNLOCK(self);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) {
        raise_tq(st);
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    release(&kb);
    release(&vb);
    return ret;
}

static PyMethodDef KV_methods[] = {
    {"length", (PyCFunction)KV_length, METH_NOARGS, "tq_kv_length"},
    {"config", (PyCFunction)KV_config, METH_NOARGS, "tq_kv_get_config as a dict (enums as ints)"},
    {"token_bytes", (PyCFunction)KV_token_bytes, METH_NOARGS,
     "tq_kv_token_bytes -> (bytes all heads, key bytes per head, value bytes per head)"},
    {"memory_usage", (PyCFunction)KV_memory_usage, METH_NOARGS, "tq_kv_memory_usage as a dict"},
    {"append", (PyCFunction)KV_append, METH_VARARGS, "append(keys, values): tq_kv_append"},
    {"attend", (PyCFunction)KV_attend, METH_VARARGS, "attend(q, q_heads, q_pos_or_None, scale, out): tq_kv_attend"},
    {"logits", (PyCFunction)KV_logits, METH_VARARGS, "logits(q, q_heads, ntok, scale, out): tq_kv_logits"},
    {"decode", (PyCFunction)KV_decode, METH_VARARGS, "decode(start, n, keys_out, values_out): tq_kv_decode"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject KVType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tq._tq.KVHandle",
    .tp_basicsize = sizeof(KVObject),
    .tp_dealloc = (destructor)KV_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Owns a tq_kv*. Made by kv_create.",
    .tp_methods = KV_methods,
};

/* kv_create(kv_heads, head_dim, key_bits, value_bits, window, sinks, center, factors, seed) */
static PyObject *mod_kv_create(PyObject *m, PyObject *args) {
    uint32_t kv_heads, head_dim, window, sinks;
    double key_bits, value_bits;
    int center, factors;
    uint64_t seed;
    if (!PyArg_ParseTuple(args, "O&O&ddO&O&iiO&:kv_create", conv_u32, &kv_heads, conv_u32, &head_dim, &key_bits,
                          &value_bits, conv_u32, &window, conv_u32, &sinks, &center, &factors, conv_u64, &seed))
        return NULL;
    tq_kv_config cfg;
    tq_kv_config_init(&cfg, kv_heads, head_dim, key_bits, value_bits);
    /* tq_kv_config_init swallows a bad bit count (bits left 0 for tq_kv_create);
     * redo the split here so the error names the count the caller gave. */
    tq_status st = tq_config_set_bits(&cfg.key, key_bits);
    if (st != TQ_OK) return raise_tq(st);
    st = tq_config_set_bits(&cfg.value, value_bits);
    if (st != TQ_OK) return raise_tq(st);
    cfg.window = window;
    cfg.sinks = sinks;
    cfg.center = (tq_kv_center)center;
    cfg.factors = (tq_kv_factor)factors;
    cfg.key.seed = seed;
    cfg.value.seed = seed + 1;
    tq_kv *kv = NULL;
    Py_BEGIN_ALLOW_THREADS
    st = tq_kv_create(&cfg, &kv);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) return raise_tq(st);
    KVObject *o = PyObject_New(KVObject, &KVType);
    if (!o) {
        tq_kv_free(kv);
        return NULL;
    }
    o->kv = kv;
    o->kv_heads = kv_heads;
    o->head_dim = head_dim;
    if (pthread_rwlock_init(&o->lock, NULL) != 0) {
        o->kv = NULL;
        PyObject_Del(o);
        tq_kv_free(kv);
        PyErr_SetString(PyExc_RuntimeError, "pthread_rwlock_init failed");
        return NULL;
    }
    return (PyObject *)o;
}

/* attention_f32(keys, values, kv_heads, head_dim, q, q_heads, q_pos|None, scale, out) */
static PyObject *mod_attention_f32(PyObject *m, PyObject *args) {
    PyObject *ko, *vo, *qo, *po, *oo;
    uint32_t kv_heads, head_dim, q_heads;
    float scale;
    if (!PyArg_ParseTuple(args, "OOO&O&OO&OfO:attention_f32", &ko, &vo, conv_u32, &kv_heads, conv_u32, &head_dim,
                          &qo, conv_u32, &q_heads, &po, &scale, &oo))
        return NULL;
    Py_buffer k = {0}, v = {0}, qb = {0}, pos = {0}, out = {0};
    PyObject *ret = NULL;
    size_t ntok, nq, row;
    if (!get_buf(ko, &k, K_F32, 0, "keys") || !get_buf(vo, &v, K_F32, 0, "values") ||
        !get_buf(qo, &qb, K_F32, 0, "q") || !get_opt_i64(po, &pos, "q_pos") || !get_buf(oo, &out, K_F32, 1, "out"))
        goto done;
    if (!mul_size(kv_heads, head_dim, &row) || !rows_of(&k, row, "keys", &ntok) ||
        !check_count(&v, buf_count(&k), "values"))
        goto done;
    if (!mul_size(q_heads, head_dim, &row) || !rows_of(&qb, row, "q", &nq)) goto done;
    if ((pos.obj && !check_count(&pos, nq, "q_pos")) || !check_count(&out, buf_count(&qb), "out")) goto done;
    tq_status st;
    const int64_t *pp = pos.obj ? (const int64_t *)pos.buf : NULL;
    Py_BEGIN_ALLOW_THREADS
    st = tq_attention_f32((const float *)k.buf, (const float *)v.buf, ntok, kv_heads, head_dim, (const float *)qb.buf,
                          nq, q_heads, pp, scale, (float *)out.buf);
    Py_END_ALLOW_THREADS
    if (st != TQ_OK) {
        raise_tq(st);
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    release(&k);
    release(&v);
    release(&qb);
    release(&pos);
    release(&out);
    return ret;
}

/* ============================================================== module */

static PyObject *mod_codebook(PyObject *m, PyObject *args) {
    uint32_t dim, bits;
    PyObject *oo;
    if (!PyArg_ParseTuple(args, "O&O&O:codebook", conv_u32, &dim, conv_u32, &bits, &oo)) return NULL;
    Py_buffer out = {0};
    if (!get_buf(oo, &out, K_F32, 1, "out")) return NULL;
    if (bits < 1 || bits > TQ_MAX_BITS) {
        PyBuffer_Release(&out);
        PyErr_Format(PyExc_ValueError, "bits = %u, must be 1..%u", bits, TQ_MAX_BITS);
        return NULL;
    }
    if (!check_count(&out, (size_t)1 << bits, "out")) {
        PyBuffer_Release(&out);
        return NULL;
    }
    double mse = 0.0;
    tq_status st;
    Py_BEGIN_ALLOW_THREADS
    st = tq_codebook_get(dim, bits, (float *)out.buf, &mse);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&out);
    if (st != TQ_OK) return raise_tq(st);
    return PyFloat_FromDouble(mse);
}

/* read_vectors(path, max_rows) -> (bytearray of n*dim float32, n, dim) */
static PyObject *mod_read_vectors(PyObject *m, PyObject *args) {
    PyObject *path;
    size_t max_rows;
    if (!PyArg_ParseTuple(args, "O&O&:read_vectors", PyUnicode_FSConverter, &path, conv_size, &max_rows)) return NULL;
    float *data = NULL;
    size_t n = 0, dim = 0;
    tq_status st;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    st = tq_read_vectors(p, max_rows, &data, &n, &dim);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (st != TQ_OK) return raise_tq(st);
    PyObject *b = bytearray_from_tq(data, n * dim * sizeof(float));
    if (!b) return NULL;
    return Py_BuildValue("(Nnn)", b, (Py_ssize_t)n, (Py_ssize_t)dim);
}

static PyObject *mod_set_threads(PyObject *m, PyObject *args) {
    uint32_t n;
    if (!PyArg_ParseTuple(args, "O&:set_threads", conv_u32, &n)) return NULL;
    tq_status st = tq_set_threads(n);
    if (st != TQ_OK) return raise_tq(st);
    Py_RETURN_NONE;
}

static PyObject *mod_get_threads(PyObject *m, PyObject *unused) { return PyLong_FromUnsignedLong(tq_get_threads()); }
static PyObject *mod_kernel_name(PyObject *m, PyObject *unused) { return PyUnicode_FromString(tq_kernel_name()); }
static PyObject *mod_build_info(PyObject *m, PyObject *unused) { return PyUnicode_FromString(tq_build_info()); }
static PyObject *mod_version_string(PyObject *m, PyObject *unused) {
    return PyUnicode_FromString(tq_version_string());
}

static PyMethodDef module_methods[] = {
    {"quantizer_create", mod_quantizer_create, METH_VARARGS,
     "quantizer_create(dim, bits, variant, rotation, norm, seed, qjl, rounds) -> QuantizerHandle"},
    {"quantizer_load", mod_quantizer_load, METH_VARARGS, "quantizer_load(path) -> QuantizerHandle"},
    {"quantizer_deserialize", mod_quantizer_deserialize, METH_VARARGS,
     "quantizer_deserialize(bytes) -> QuantizerHandle"},
    {"index_create", mod_index_create, METH_VARARGS,
     "index_create(dim, bits, metric, variant, norm, rotation, rerank, rerank_bits, center, center_vector, seed)"},
    {"index_load", mod_index_load, METH_VARARGS, "index_load(path, mmap) -> IndexHandle"},
    {"kv_create", mod_kv_create, METH_VARARGS,
     "kv_create(kv_heads, head_dim, key_bits, value_bits, window, sinks, center, factors, seed) -> KVHandle"},
    {"attention_f32", mod_attention_f32, METH_VARARGS,
     "attention_f32(keys, values, kv_heads, head_dim, q, q_heads, q_pos, scale, out)"},
    {"read_vectors", mod_read_vectors, METH_VARARGS,
     "read_vectors(path, max_rows) -> (bytearray, n, dim): tq_read_vectors"},
    {"codebook", mod_codebook, METH_VARARGS, "codebook(dim, bits, out) -> mse_unit: tq_codebook_get"},
    {"set_threads", mod_set_threads, METH_VARARGS, "tq_set_threads"},
    {"get_threads", mod_get_threads, METH_NOARGS, "tq_get_threads"},
    {"kernel_name", mod_kernel_name, METH_NOARGS, "tq_kernel_name"},
    {"build_info", mod_build_info, METH_NOARGS, "tq_build_info"},
    {"version_string", mod_version_string, METH_NOARGS, "tq_version_string"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "tq._tq",
                                       "Low-level bindings of the tq C library (use the tq package).", -1,
                                       module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__tq(void);

PyMODINIT_FUNC PyInit__tq(void) {
    if (PyType_Ready(&QuantizerType) < 0 || PyType_Ready(&IndexType) < 0 || PyType_Ready(&KVType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    /* class attributes are the defaults of an instance made in Python */
    PyObject *defaults = Py_BuildValue("{s:O,s:O,s:s}", "status", Py_None, "code", Py_None, "detail", "");
    if (!defaults) goto fail;
    TQError = PyErr_NewExceptionWithDoc(
        "tq.TQError",
        "A tq C call failed. str() is the status text and tq_last_error() detail; .status is the tq_status name "
        "(e.g. 'TQ_ERR_NONFINITE'), .code its value, .detail the library's message.",
        PyExc_Exception, defaults);
    Py_DECREF(defaults);
    if (!TQError) goto fail;
    Py_INCREF(TQError);
    if (PyModule_AddObject(m, "TQError", TQError) < 0) {
        Py_DECREF(TQError);
        goto fail;
    }
    Py_INCREF(&QuantizerType);
    if (PyModule_AddObject(m, "QuantizerHandle", (PyObject *)&QuantizerType) < 0) {
        Py_DECREF(&QuantizerType);
        goto fail;
    }
    Py_INCREF(&IndexType);
    if (PyModule_AddObject(m, "IndexHandle", (PyObject *)&IndexType) < 0) {
        Py_DECREF(&IndexType);
        goto fail;
    }
    Py_INCREF(&KVType);
    if (PyModule_AddObject(m, "KVHandle", (PyObject *)&KVType) < 0) {
        Py_DECREF(&KVType);
        goto fail;
    }
    struct {
        const char *name;
        long value;
    } consts[] = {
        {"VARIANT_MSE", TQ_VARIANT_MSE},
        {"VARIANT_PROD", TQ_VARIANT_PROD},
        {"VARIANT_QJL", TQ_VARIANT_QJL},
        {"VARIANT_UNIFORM", TQ_VARIANT_UNIFORM},
        {"ROTATION_NONE", TQ_ROTATION_NONE},
        {"ROTATION_DENSE", TQ_ROTATION_DENSE},
        {"ROTATION_HADAMARD", TQ_ROTATION_HADAMARD},
        {"QJL_DENSE", TQ_QJL_DENSE},
        {"QJL_STRUCTURED", TQ_QJL_STRUCTURED},
        {"NORM_PLAIN", TQ_NORM_PLAIN},
        {"NORM_UNIT", TQ_NORM_UNIT},
        {"NORM_UNBIASED", TQ_NORM_UNBIASED},
        {"METRIC_IP", TQ_METRIC_IP},
        {"METRIC_L2", TQ_METRIC_L2},
        {"INDEX_IP", TQ_INDEX_IP},
        {"INDEX_L2", TQ_INDEX_L2},
        {"INDEX_COSINE", TQ_INDEX_COSINE},
        {"RERANK_NONE", TQ_RERANK_NONE},
        {"RERANK_FLOAT", TQ_RERANK_FLOAT},
        {"RERANK_CODE", TQ_RERANK_CODE},
        {"CENTER_NONE", TQ_CENTER_NONE},
        {"CENTER_FIRST", TQ_CENTER_FIRST},
        {"CENTER_GIVEN", TQ_CENTER_GIVEN},
        {"KV_FACTOR_F16", TQ_KV_FACTOR_F16},
        {"KV_FACTOR_F32", TQ_KV_FACTOR_F32},
        {"KV_CENTER_NONE", TQ_KV_CENTER_NONE},
        {"KV_CENTER_KEYS", TQ_KV_CENTER_KEYS},
        {"KV_CENTER_VALUES", TQ_KV_CENTER_VALUES},
        {"KV_CENTER_BOTH", TQ_KV_CENTER_BOTH},
        {"MAX_DIM", (long)TQ_MAX_DIM},
        {"MAX_DENSE_DIM", (long)TQ_MAX_DENSE_DIM},
        {"MAX_BITS", (long)TQ_MAX_BITS},
        {"MAX_ROUNDS", (long)TQ_MAX_ROUNDS},
        {"VERSION_MAJOR", TQ_VERSION_MAJOR},
        {"VERSION_MINOR", TQ_VERSION_MINOR},
        {"VERSION_PATCH", TQ_VERSION_PATCH},
    };
    for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
        if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
