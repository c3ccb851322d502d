// One 2D LSTM layer (Graves 2008), forward and backward, for pipeline/mdlstm.py: the images
// of a batch advance in lock step.
//
// Every image of a width-bucketed batch has the same (H, W) and each direction has one set of
// weights, so the scans of one direction over the batch are the same computation on different
// numbers.  The batch is therefore the innermost dimension, cut into groups of L lanes (L = 4
// or 8, padded with empty images): one cell step of a group is a small matrix product, the
// weights [W_ih | U] (5h x (C + 2h)) times the lanes' [x; h_up; h_left] ((C + 2h) x L), done
// as broadcast-FMA over the lanes with up to ten gate rows in registers.  The input
// projection is part of the step, so no (5h x pixels) pre-activation tensor is ever written.
// One task is (direction, lane group); OpenMP runs the tasks in parallel, each sequential.
// Direction d walks the image from its own corner (flips H when d >= 2, W when d is odd).
//
// Layouts (ng = number of lane groups, rows of H * W * L numbers, all contiguous):
//   x   (C, ng, H, W, L)       layer input        w (4, 5h, C + 2h)   [W_ih | U], gate rows
//   h   (4, h, ng, H, W, L)    output (and grad_h) [i, f_up, f_left, o, g];  bias (4, 5h)
//   c   (4, ng, H, W, h, L)    cell states         act (4, ng, H, W, 5h, L) activated gates
//   mask (ng, W, L) or empty   1 where an image column is part of its line, 0 in the padding of a
//                              batch of lines of different widths: a masked cell's gates i, f_up,
//                              f_left, o are 0, so its c and h are 0 and it passes no state (a
//                              line's right-to-left scans start at its own right edge, as if it
//                              were alone), and backward (unchanged) gives it zero gradients.
// Backward returns the input gradient per direction (4, C, ng, H, W, L), and per task the
// gradients of w (4, ng, 5h, C + 2h) and of the bias (4, ng, 5h): the caller sums them.  The
// weight gradients are accumulated after each scan row, from that row's gate gradients while
// they are still in cache (one small GEMM per row, contracted over its pixels and lanes).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

constexpr int64_t kDirs = 4;
constexpr int64_t kGates = 5;

// L lanes of T as one GCC/Clang vector: FMA registers where the CPU has them (one AVX2 ymm
// holds 8 floats), plain scalar code elsewhere.  Written out as vectors because the compiler
// does not keep a 2D accumulator array in registers by itself (measured 5x slower).  No 16
// lanes: GCC passes 64-byte vectors through memory on AVX2 (measured 5x slower than 8).
template <typename T, int L>
struct Lanes { typedef T type __attribute__((vector_size(sizeof(T) * L))); };
template <typename T, int L>
using vec = typename Lanes<T, L>::type;
template <typename T, int L>
inline vec<T, L> load(const T* p) { vec<T, L> v; std::memcpy(&v, p, sizeof v); return v; }
template <typename T, int L>
inline void store(T* p, const vec<T, L>& v) { std::memcpy(p, &v, sizeof v); }
template <typename T, int L>
inline T hsum(const vec<T, L>& v) {
  T s = 0;
  for (int l = 0; l < L; ++l) s += v[l];
  return s;
}

// exp, sigmoid and tanh on whole lane vectors.  float: 2^n * e^r with |r| <= ln2 / 2 and a
// degree-6 polynomial (relative error ~1e-7), all in vector registers; double (gradcheck):
// exact libm per lane.
template <typename T, int L>
inline vec<T, L> vexp(vec<T, L> x) {
  if constexpr (std::is_same_v<T, float>) {
    using V = vec<float, L>;
    using VI = vec<int32_t, L>;
    const V lo = V{} - 87.0f, hi = V{} + 88.0f, magic = V{} + 12582912.0f;  // 1.5 * 2^23
    x = x < lo ? lo : x;
    x = x > hi ? hi : x;
    const V n = (x * 1.44269504f + magic) - magic;  // adding magic rounds to an integer
    const V r = (x - n * 0.693145752f) - n * 1.42860677e-6f;  // ln 2 in two parts
    const V p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    const VI bits = (__builtin_convertvector(n, VI) + 127) << 23;
    V scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
  } else {
    for (int l = 0; l < L; ++l) x[l] = std::exp(x[l]);
    return x;
  }
}
template <typename T, int L>
inline vec<T, L> vsigmoid(vec<T, L> x) { return T(1) / (T(1) + vexp<T, L>(-x)); }
template <typename T, int L>
inline vec<T, L> vtanh(vec<T, L> x) { return T(2) / (T(1) + vexp<T, L>(T(-2) * x)) - T(1); }

// out[r] = bias[r] + sum_k m[r * K + k] * v[k] for R rows of L lanes held in registers.
template <typename T, int L, int R>
inline void rows_times(T* __restrict out, const T* __restrict bias, const T* __restrict m,
                       const T* __restrict v, int64_t K) {
  vec<T, L> acc[R];
  for (int r = 0; r < R; ++r) acc[r] = bias ? vec<T, L>{} + bias[r] : vec<T, L>{};
  for (int64_t k = 0; k < K; ++k) {
    const vec<T, L> vk = load<T, L>(v + k * L);
    for (int r = 0; r < R; ++r) acc[r] += m[r * K + k] * vk;
  }
  for (int r = 0; r < R; ++r) store<T, L>(out + r * L, acc[r]);
}

// out (n_rows x L) = bias + m (n_rows x K) v (K x L), in blocks of 10, 5, 2, 1 rows (ten
// independent FMA chains hide the FMA latency; 5h gate rows always split into fives).
template <typename T, int L>
inline void matrix_times(T* out, const T* bias, const T* m, int64_t n_rows, const T* v, int64_t K) {
  int64_t r = 0;
  auto b = [&](int64_t row) { return bias ? bias + row : nullptr; };
  for (; r + 10 <= n_rows; r += 10) rows_times<T, L, 10>(out + r * L, b(r), m + r * K, v, K);
  for (; r + 5 <= n_rows; r += 5) rows_times<T, L, 5>(out + r * L, b(r), m + r * K, v, K);
  for (; r + 2 <= n_rows; r += 2) rows_times<T, L, 2>(out + r * L, b(r), m + r * K, v, K);
  for (; r < n_rows; ++r) rows_times<T, L, 1>(out + r * L, b(r), m + r * K, v, K);
}

// dw[q][k] += sum_n a_q[n] * b_k[n] over n < count (a multiple of L): an "A B^T" tile of
// QT x KT accumulators; a_q = a + q * a_stride, b_k = b + k * b_stride.
template <typename T, int L, int QT, int KT>
inline void nt_tile(T* dw, int64_t ldw, const T* a, int64_t a_stride, const T* b, int64_t b_stride, int64_t count) {
  vec<T, L> acc[QT][KT] = {};
  for (int64_t n = 0; n < count; n += L) {
    vec<T, L> bv[KT];
    for (int k = 0; k < KT; ++k) bv[k] = load<T, L>(b + k * b_stride + n);
    for (int q = 0; q < QT; ++q) {
      const vec<T, L> av = load<T, L>(a + q * a_stride + n);
      for (int k = 0; k < KT; ++k) acc[q][k] += av * bv[k];
    }
  }
  for (int q = 0; q < QT; ++q)
    for (int k = 0; k < KT; ++k) dw[q * ldw + k] += hsum<T, L>(acc[q][k]);
}

// dw (rows x cols, leading dimension ldw) += A (rows x count) B (cols x count)^T.
template <typename T, int L>
void add_nt(T* dw, int64_t ldw, const T* a, int64_t a_stride, int64_t rows, const T* b, int64_t b_stride,
            int64_t cols, int64_t count) {
  int64_t q = 0;
  for (; q + 2 <= rows; q += 2) {
    int64_t k = 0;
    for (; k + 3 <= cols; k += 3) nt_tile<T, L, 2, 3>(dw + q * ldw + k, ldw, a + q * a_stride, a_stride, b + k * b_stride, b_stride, count);
    for (; k < cols; ++k) nt_tile<T, L, 2, 1>(dw + q * ldw + k, ldw, a + q * a_stride, a_stride, b + k * b_stride, b_stride, count);
  }
  for (; q < rows; ++q)
    for (int64_t k = 0; k < cols; ++k) nt_tile<T, L, 1, 1>(dw + q * ldw + k, ldw, a + q * a_stride, a_stride, b + k * b_stride, b_stride, count);
}

// Sizes of one call and the base pointers of task (direction d, lane group g).  A "row" of
// x / h / grad_h / dx is H * W * L numbers (one channel of one group); rows of one tensor are
// rs = ng * H * W * L apart.
struct Task {
  int64_t height, width, hw, channels, hid, G, K, groups, d, g, L, rs;
  Task(int64_t d_, int64_t g_, int64_t groups_, int64_t height_, int64_t width_, int64_t channels_, int64_t hid_, int64_t L_)
      : height(height_), width(width_), hw(height_ * width_), channels(channels_), hid(hid_), G(kGates * hid_),
        K(channels_ + 2 * hid_), groups(groups_), d(d_), g(g_), L(L_), rs(groups_ * height_ * width_ * L_) {}
  // (rows, ng, H, W, L) without a direction (x) and (4, rows, ng, H, W, L) with one
  template <typename T> T* rows_of(T* base) const { return base + g * hw * L; }
  template <typename T> T* rows_of(T* base, int64_t n_rows) const { return base + d * n_rows * rs + g * hw * L; }
  // (4, ng, H, W, n, L) -> this task's block
  template <typename T> T* block(T* base, int64_t n) const { return base + (d * groups + g) * hw * n * L; }
  // scan step (ii, jj) -> pixel; the scan's up/left neighbours are pixel - up / pixel - left
  int64_t pixel(int64_t ii, int64_t jj) const {
    return (d >= 2 ? height - 1 - ii : ii) * width + (d % 2 == 1 ? width - 1 - jj : jj);
  }
  int64_t up() const { return d >= 2 ? -width : width; }
  int64_t left() const { return d % 2 == 1 ? -1 : 1; }
};

// Starting threads costs more than a tiny scan (gradcheck calls it hundreds of times).
inline bool worth_threads(int64_t tasks, int64_t hw, int64_t hid, int64_t L) {
  return tasks > 1 && tasks * hw * hid * hid * L >= (int64_t(1) << 15);
}

template <typename T, int64_t HID, int L>
void forward_task(const Task& t, const T* x, const T* w, const T* bias, const T* mask, T* h, T* c, T* act) {
  using V = vec<T, L>;
  const int64_t hid = HID > 0 ? HID : t.hid, G = kGates * hid, C = t.channels, K = C + 2 * hid;
  const int64_t rs = t.rs, hl = hid * L;
  const T* xg = t.rows_of(x);
  T* hd = t.rows_of(h, hid);
  T* cd = t.block(c, hid);
  T* ad = t.block(act, G);
  const T* wd = w + t.d * G * K;
  const T* bd = bias + t.d * G;
  std::vector<T> in(K * L), a(G * L), zero(hl, T(0));  // in = [x; h_up; h_left]
  for (int64_t ii = 0; ii < t.height; ++ii) {
    for (int64_t jj = 0; jj < t.width; ++jj) {
      const int64_t p = t.pixel(ii, jj), up = p - t.up(), left = p - t.left();
      for (int64_t k = 0; k < C; ++k) store<T, L>(&in[k * L], load<T, L>(xg + k * rs + p * L));
      for (int64_t k = 0; k < hid; ++k) {
        store<T, L>(&in[(C + k) * L], ii > 0 ? load<T, L>(hd + k * rs + up * L) : V{});
        store<T, L>(&in[(C + hid + k) * L], jj > 0 ? load<T, L>(hd + k * rs + left * L) : V{});
      }
      matrix_times<T, L>(a.data(), bd, wd, G, in.data(), K);
      T* ac = ad + p * G * L;
      T* cell = cd + p * hl;
      const T* c_up = ii > 0 ? cd + up * hl : zero.data();
      const T* c_left = jj > 0 ? cd + left * hl : zero.data();
      const V m = mask ? load<T, L>(mask + (t.g * t.width + p % t.width) * L) : V{} + T(1);
      for (int64_t q = 0; q < hl; q += L) {
        const V in_g = m * vsigmoid<T, L>(load<T, L>(&a[q])), f_up = m * vsigmoid<T, L>(load<T, L>(&a[hl + q]));
        const V f_left = m * vsigmoid<T, L>(load<T, L>(&a[2 * hl + q])), out_g = m * vsigmoid<T, L>(load<T, L>(&a[3 * hl + q]));
        const V cand = vtanh<T, L>(load<T, L>(&a[4 * hl + q]));
        const V v = in_g * cand + f_up * load<T, L>(c_up + q) + f_left * load<T, L>(c_left + q);
        store<T, L>(ac + q, in_g);
        store<T, L>(ac + hl + q, f_up);
        store<T, L>(ac + 2 * hl + q, f_left);
        store<T, L>(ac + 3 * hl + q, out_g);
        store<T, L>(ac + 4 * hl + q, cand);
        store<T, L>(cell + q, v);
        store<T, L>(hd + (q / L) * rs + p * L, out_g * vtanh<T, L>(v));
      }
    }
  }
}

// The weight and bias gradients of one finished scan row (image row r), from its gate
// gradients `rowgrad` (5h rows of W * L, in image column order): input weights against x,
// U_up against the row above in scan order, U_left against the left neighbours in scan order.
template <typename T, int L>
void add_row_weight_grads(const Task& t, int64_t ii, const T* rowgrad, const T* xg, const T* hd, T* dw, T* db) {
  const int64_t G = t.G, C = t.channels, hid = t.hid, K = t.K, W = t.width, WL = W * L, rs = t.rs;
  const int64_t r = t.d >= 2 ? t.height - 1 - ii : ii, row = r * WL;
  add_nt<T, L>(dw, K, rowgrad, WL, G, xg + row, rs, C, WL);
  if (ii > 0) add_nt<T, L>(dw + C, K, rowgrad, WL, G, hd + row - t.up() * L, rs, hid, WL);
  // left neighbour of image column col is col - left; columns without one are skipped
  const int64_t first = t.left() > 0 ? 1 : 0;
  add_nt<T, L>(dw + C + hid, K, rowgrad + first * L, WL, G, hd + row + (first - t.left()) * L, rs, hid, (W - 1) * L);
  for (int64_t q = 0; q < G; ++q) {
    vec<T, L> s{};
    for (int64_t n = 0; n < WL; n += L) s += load<T, L>(rowgrad + q * WL + n);
    db[q] += hsum<T, L>(s);
  }
}

// Reverse scan order.  Step (ii, jj) receives state gradients from (ii+1, jj) (kept per
// column in `below`) and from (ii, jj+1) (kept in `right`); it computes its gate
// pre-activation gradients, passes gradients on to x, (ii-1, jj) and (ii, jj-1), and keeps
// the gate gradients of the row for its weight gradients.
template <typename T, int64_t HID, int L>
void backward_task(const Task& t, const T* grad_h, const T* x, const T* h, const T* c, const T* act,
                   const T* w_t, T* dx, T* dw, T* db) {
  using V = vec<T, L>;
  const int64_t hid = HID > 0 ? HID : t.hid, G = kGates * hid, C = t.channels, K = C + 2 * hid;
  const int64_t rs = t.rs, hl = hid * L, W = t.width;
  const T* gh = t.rows_of(grad_h, hid);
  const T* xg = t.rows_of(x);
  const T* hd = t.rows_of(h, hid);
  const T* cd = t.block(c, hid);
  const T* ad = t.block(act, G);
  T* dxd = t.rows_of(dx, C);
  const T* wt = w_t + t.d * K * G;  // (C + 2h, 5h)
  T* dwd = dw + (t.d * t.groups + t.g) * G * K;
  T* dbd = db + (t.d * t.groups + t.g) * G;
  std::fill(dwd, dwd + G * K, T(0));
  std::fill(dbd, dbd + G, T(0));
  std::vector<T> below_h(W * hl, T(0)), below_c(W * hl, T(0)), rowgrad(G * W * L);
  std::vector<T> right_h(hl), right_c(hl), dgate(G * L), dprev(K * L), zero(hl, T(0));
  for (int64_t ii = t.height - 1; ii >= 0; --ii) {
    std::fill(right_h.begin(), right_h.end(), T(0));
    std::fill(right_c.begin(), right_c.end(), T(0));
    for (int64_t jj = W - 1; jj >= 0; --jj) {
      const int64_t p = t.pixel(ii, jj), up = p - t.up(), left = p - t.left(), col = p % W;
      const T* ac = ad + p * G * L;
      const T* cell = cd + p * hl;
      const T* c_up = ii > 0 ? cd + up * hl : zero.data();
      const T* c_left = jj > 0 ? cd + left * hl : zero.data();
      T* bh = below_h.data() + jj * hl;
      T* bc = below_c.data() + jj * hl;
      for (int64_t q = 0; q < hl; q += L) {
        const V in_g = load<T, L>(ac + q), f_up = load<T, L>(ac + hl + q), f_left = load<T, L>(ac + 2 * hl + q);
        const V out_g = load<T, L>(ac + 3 * hl + q), cand = load<T, L>(ac + 4 * hl + q);
        const V dh = load<T, L>(gh + (q / L) * rs + p * L) + load<T, L>(bh + q) + load<T, L>(&right_h[q]);
        const V tc = vtanh<T, L>(load<T, L>(cell + q));
        const V dc = load<T, L>(bc + q) + load<T, L>(&right_c[q]) + dh * out_g * (T(1) - tc * tc);
        const V grads[kGates] = {dc * cand * in_g * (T(1) - in_g),
                                 dc * load<T, L>(c_up + q) * f_up * (T(1) - f_up),
                                 dc * load<T, L>(c_left + q) * f_left * (T(1) - f_left),
                                 dh * tc * out_g * (T(1) - out_g),
                                 dc * in_g * (T(1) - cand * cand)};
        for (int64_t e = 0; e < kGates; ++e) {
          store<T, L>(&dgate[e * hl + q], grads[e]);
          store<T, L>(&rowgrad[(e * hid + q / L) * W * L + col * L], grads[e]);
        }
        store<T, L>(bc + q, dc * f_up);         // from now on: the gradient for (ii-1, jj)
        store<T, L>(&right_c[q], dc * f_left);  // for (ii, jj-1)
      }
      matrix_times<T, L>(dprev.data(), nullptr, wt, K, dgate.data(), G);
      for (int64_t k = 0; k < C; ++k) store<T, L>(dxd + k * rs + p * L, load<T, L>(&dprev[k * L]));
      std::copy(dprev.begin() + C * L, dprev.begin() + (C + hid) * L, bh);
      std::copy(dprev.begin() + (C + hid) * L, dprev.end(), right_h.begin());
    }
    add_row_weight_grads<T, L>(t, ii, rowgrad.data(), xg, hd, dwd, dbd);
  }
}

// Calls f with the hidden size as a compile-time constant when it is one the Pham network
// uses (its per-step loops are then unrolled), else with 0 (run-time size); and with the
// lane count L as a compile-time constant.
template <typename F>
void dispatch(int64_t hid, int64_t lanes, F&& f) {
  auto with_lanes = [&](auto HID) {
    switch (lanes) {
      case 4: f(HID, std::integral_constant<int, 4>{}); break;
      case 8: f(HID, std::integral_constant<int, 8>{}); break;
      default: TORCH_CHECK(false, "lane groups must have 4 or 8 lanes, got ", lanes);
    }
  };
  switch (hid) {
    case 2: with_lanes(std::integral_constant<int64_t, 2>{}); break;
    case 10: with_lanes(std::integral_constant<int64_t, 10>{}); break;
    default: with_lanes(std::integral_constant<int64_t, 0>{});
  }
}

void check(const torch::Tensor& t, const char* name, int64_t dim, const torch::Tensor& like) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " must have the dtype of x");
}

template <typename Body>
void for_each_task(int64_t groups, int64_t hw, int64_t hid, int64_t lanes, Body&& body) {
  const int64_t tasks = kDirs * groups;
#pragma omp parallel for schedule(dynamic, 1) num_threads(at::get_num_threads()) if (worth_threads(tasks, hw, hid, lanes))
  for (int64_t n = 0; n < tasks; ++n) body(n / groups, n % groups);
}

// (x (C, ng, H, W, L), w (4, 5h, C + 2h), bias (4, 5h), mask (ng, W, L) or empty)
//   -> (h (4, h, ng, H, W, L), c, act)
std::vector<torch::Tensor> forward(torch::Tensor x, torch::Tensor w, torch::Tensor bias, torch::Tensor mask) {
  check(x, "x", 5, x);
  check(w, "w", 3, x);
  check(bias, "bias", 2, x);
  const int64_t C = x.size(0), groups = x.size(1), height = x.size(2), width = x.size(3), lanes = x.size(4);
  const bool masked = mask.numel() > 0;
  if (masked) {
    check(mask, "mask", 3, x);
    TORCH_CHECK(mask.size(0) == groups && mask.size(1) == width && mask.size(2) == lanes, "mask must be (ng, W, L)");
  }
  const int64_t G = w.size(1), hid = G / kGates;
  TORCH_CHECK(w.size(0) == kDirs && G == kGates * hid && w.size(2) == C + 2 * hid, "w must be (4, 5h, C + 2h)");
  TORCH_CHECK(bias.size(0) == kDirs && bias.size(1) == G, "bias must be (4, 5h)");
  auto h = torch::empty({kDirs, hid, groups, height, width, lanes}, x.options());
  auto c = torch::empty({kDirs, groups, height, width, hid, lanes}, x.options());
  auto act = torch::empty({kDirs, groups, height, width, G, lanes}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mdlstm_forward", [&] {
    dispatch(hid, lanes, [&](auto HID, auto L) {
      for_each_task(groups, height * width, hid, lanes, [&](int64_t d, int64_t g) {
        const Task task(d, g, groups, height, width, C, hid, L());
        forward_task<scalar_t, HID(), L()>(task, x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), bias.data_ptr<scalar_t>(),
                                           masked ? mask.data_ptr<scalar_t>() : nullptr,
                                           h.data_ptr<scalar_t>(), c.data_ptr<scalar_t>(), act.data_ptr<scalar_t>());
      });
    });
  });
  return {h, c, act};
}

// (grad_h, x, h, c, act, w_t (4, C + 2h, 5h)) -> (dx per direction, dw per task, dbias per task)
std::vector<torch::Tensor> backward(torch::Tensor grad_h, torch::Tensor x, torch::Tensor h, torch::Tensor c,
                                    torch::Tensor act, torch::Tensor w_t) {
  check(grad_h, "grad_h", 6, x);
  check(x, "x", 5, x);
  check(h, "h", 6, x);
  check(c, "c", 6, x);
  check(act, "act", 6, x);
  check(w_t, "w_t", 3, x);
  TORCH_CHECK(grad_h.sizes() == h.sizes(), "grad_h must have the shape of h");
  const int64_t C = x.size(0), groups = x.size(1), height = x.size(2), width = x.size(3), lanes = x.size(4);
  const int64_t hid = h.size(1), G = kGates * hid, K = C + 2 * hid;
  TORCH_CHECK(h.size(2) == groups && h.size(3) == height && h.size(4) == width && h.size(5) == lanes,
              "h does not match x");
  TORCH_CHECK(w_t.size(0) == kDirs && w_t.size(1) == K && w_t.size(2) == G, "w_t must be (4, C + 2h, 5h)");
  auto dx = torch::empty({kDirs, C, groups, height, width, lanes}, x.options());
  auto dw = torch::empty({kDirs, groups, G, K}, x.options());
  auto db = torch::empty({kDirs, groups, G}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mdlstm_backward", [&] {
    dispatch(hid, lanes, [&](auto HID, auto L) {
      for_each_task(groups, height * width, hid, lanes, [&](int64_t d, int64_t g) {
        const Task task(d, g, groups, height, width, C, hid, L());
        backward_task<scalar_t, HID(), L()>(task, grad_h.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
                                            c.data_ptr<scalar_t>(), act.data_ptr<scalar_t>(), w_t.data_ptr<scalar_t>(),
                                            dx.data_ptr<scalar_t>(), dw.data_ptr<scalar_t>(), db.data_ptr<scalar_t>());
      });
    });
  });
  return {dx, dw, db};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "2D LSTM layer forward, lanes innermost: (x, w, bias, mask) -> (h, c, act)");
  m.def("backward", &backward, "2D LSTM layer backward: (grad_h, x, h, c, act, w_t) -> (dx, dw, dbias)");
}
