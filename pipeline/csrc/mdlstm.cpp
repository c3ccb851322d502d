// 2D LSTM scan (Graves 2008) with its backward, for pipeline/mdlstm.py.
//
// One scan per (image b, direction d), n = b * 4 + d; OpenMP runs the scans in parallel and
// each is sequential.  All tensors are in image order; direction d walks the image from its
// own corner (flips H when d >= 2, W when d is odd), see Walk.  Layouts chosen so that no
// copy is needed around the call:
//   xp   (B, H, W, 4, 5h)  input pre-activations W x + b (one addmm), gate blocks
//                          [i, f_up, f_left, o, g];  act: the activated gates, same layout
//   u_t  (4, 2h, 5h)       recurrent weights transposed (forward);  u (4, 5h, 2h) (backward)
//   h    (B, 4h, H, W)     the layer output, direction-major channels
//   c    (B, 4, H, W, h)   cell states
// Backward returns the gate gradients (layout of xp) and one recurrent-weight gradient per scan.
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

// exp(x) for float without libm calls, so that the gate loops vectorise: 2^n * e^r with
// |r| <= ln2 / 2 and a degree-6 Taylor polynomial (relative error ~1e-7, float precision).
inline float exp_fast(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504f + magic) - magic;
  const float r = (x - n * 0.693145752f) - n * 1.42860677e-6f;  // ln 2 in two parts
  const float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline double exp_fast(double x) { return std::exp(x); }  // float64 (gradcheck): exact libm

template <typename T>
inline T sigmoid(T x) { return T(1) / (T(1) + exp_fast(-x)); }
template <typename T>
inline T tanh_fast(T x) { return T(2) / (T(1) + exp_fast(T(-2) * x)) - T(1); }

// a[0:len] += s * v[0:len]; contiguous, so the compiler vectorises it without reassociation.
template <typename T>
inline void axpy(T* __restrict a, T s, const T* __restrict v, int64_t len) {
  for (int64_t q = 0; q < len; ++q) a[q] += s * v[q];
}

// Starting threads costs more than a tiny scan (gradcheck calls it hundreds of times).
inline bool worth_threads(int64_t n_scans, int64_t height, int64_t width, int64_t hid) {
  return n_scans > 1 && n_scans * height * width * hid * hid >= (int64_t(1) << 14);
}

// Scan order -> image order for one direction: step (ii, jj) of the scan is pixel
// row(ii) * W + col(jj); its up/left neighbours in the scan are pixel - up / pixel - left.
struct Walk {
  int64_t height, width, up, left;
  bool flip_h, flip_w;
  Walk(int64_t direction, int64_t h, int64_t w)
      : height(h), width(w), flip_h(direction >= 2), flip_w(direction % 2 == 1) {
    up = flip_h ? -width : width;
    left = flip_w ? -1 : 1;
  }
  int64_t pixel(int64_t ii, int64_t jj) const {
    return (flip_h ? height - 1 - ii : ii) * width + (flip_w ? width - 1 - jj : jj);
  }
};

// Pointers of scan n into the shared tensors.
template <typename T>
struct ScanView {
  int64_t hw, hid, G, x_stride;  // x_stride: distance between two pixels in xp / act
  T* x; T* act; T* h; T* c;  // x: xp in forward, da in backward
  ScanView(int64_t n, int64_t height, int64_t width, int64_t hid_, T* xp_or_da, T* act_, T* h_, T* c_)
      : hw(height * width), hid(hid_), G(5 * hid_), x_stride(kDirs * 5 * hid_) {
    const int64_t b = n / kDirs, d = n % kDirs;
    x = xp_or_da + b * hw * x_stride + d * G;
    act = act_ + b * hw * x_stride + d * G;
    h = h_ + n * hid * hw;
    c = c_ + n * hw * hid;
  }
  T& hv(int64_t p, int64_t k) const { return h[k * hw + p]; }
  T& cv(int64_t p, int64_t k) const { return c[p * hid + k]; }
};

template <typename T, int64_t HID>
void scan_forward(const T* xp, const T* u_t, T* h, T* c, T* act,
                  int64_t n_scans, int64_t height, int64_t width, int64_t hid_) {
  const int64_t hid = HID > 0 ? HID : hid_, G = 5 * hid;
#pragma omp parallel for schedule(dynamic, 1) num_threads(at::get_num_threads()) if (worth_threads(n_scans, height, width, hid))
  for (int64_t n = 0; n < n_scans; ++n) {
    const Walk walk(n % kDirs, height, width);
    const ScanView<T> s(n, height, width, hid, const_cast<T*>(xp), act, h, c);
    const T* u = u_t + (n % kDirs) * 2 * hid * G;
    std::vector<T> a(G);
    for (int64_t ii = 0; ii < height; ++ii) {
      for (int64_t jj = 0; jj < width; ++jj) {
        const int64_t p = walk.pixel(ii, jj), up = p - walk.up, left = p - walk.left;
        const T* x = s.x + p * s.x_stride;
        for (int64_t q = 0; q < G; ++q) a[q] = x[q];
        if (ii > 0)
          for (int64_t k = 0; k < hid; ++k) axpy(a.data(), s.hv(up, k), u + k * G, G);
        if (jj > 0)
          for (int64_t k = 0; k < hid; ++k) axpy(a.data(), s.hv(left, k), u + (hid + k) * G, G);
        T* ac = s.act + p * s.x_stride;
        for (int64_t q = 0; q < 4 * hid; ++q) ac[q] = sigmoid(a[q]);
        for (int64_t q = 4 * hid; q < G; ++q) ac[q] = tanh_fast(a[q]);
        T* cell = &s.cv(p, 0);
        for (int64_t k = 0; k < hid; ++k) cell[k] = ac[k] * ac[4 * hid + k];
        if (ii > 0)
          for (int64_t k = 0; k < hid; ++k) cell[k] += ac[hid + k] * s.cv(up, k);
        if (jj > 0)
          for (int64_t k = 0; k < hid; ++k) cell[k] += ac[2 * hid + k] * s.cv(left, k);
        // through a[] (free now): the contiguous loop vectorises, the strided stores follow
        for (int64_t k = 0; k < hid; ++k) a[k] = ac[3 * hid + k] * tanh_fast(cell[k]);
        for (int64_t k = 0; k < hid; ++k) s.hv(p, k) = a[k];
      }
    }
  }
}

// Reverse scan order.  Step (ii, jj) receives state gradients from (ii+1, jj) (kept per
// column in `below`) and from (ii, jj+1) (kept in `right`); it writes its gate
// pre-activation gradient, adds da x [h_up, h_left] to this scan's weight gradient du
// (5h, 2h), and passes gradients on to (ii-1, jj) and (ii, jj-1).
template <typename T, int64_t HID>
void scan_backward(const T* grad_h, const T* h, const T* c, const T* act, const T* u, T* da, T* du,
                   int64_t n_scans, int64_t height, int64_t width, int64_t hid_) {
  const int64_t hid = HID > 0 ? HID : hid_, G = 5 * hid;
#pragma omp parallel for schedule(dynamic, 1) num_threads(at::get_num_threads()) if (worth_threads(n_scans, height, width, hid))
  for (int64_t n = 0; n < n_scans; ++n) {
    const Walk walk(n % kDirs, height, width);
    const ScanView<T> s(n, height, width, hid, da, const_cast<T*>(act), const_cast<T*>(h),
                        const_cast<T*>(c));
    const T* gh = grad_h + n * hid * s.hw;
    const T* w = u + (n % kDirs) * G * 2 * hid;  // (5h, 2h), rows are gates
    T* dw = du + n * G * 2 * hid;
    std::fill(dw, dw + G * 2 * hid, T(0));
    std::vector<T> below_h(width * hid, T(0)), below_c(width * hid, T(0));
    std::vector<T> right_h(hid), right_c(hid), dprev(2 * hid);
    // du += da x [h_up, h_left], accumulated over chunks of steps so that du (up to
    // 5h x 2h = 25k numbers) is swept once per chunk rather than once per step
    constexpr int64_t kChunk = 16;
    std::vector<T> prev_buf(kChunk * 2 * hid);
    std::vector<const T*> da_buf(kChunk);
    int64_t filled = 0;
    auto flush = [&] {
      for (int64_t q = 0; q < G; ++q)
        for (int64_t e = 0; e < filled; ++e) axpy(dw + q * 2 * hid, da_buf[e][q], &prev_buf[e * 2 * hid], 2 * hid);
      filled = 0;
    };
    for (int64_t ii = height - 1; ii >= 0; --ii) {
      std::fill(right_h.begin(), right_h.end(), T(0));
      std::fill(right_c.begin(), right_c.end(), T(0));
      for (int64_t jj = width - 1; jj >= 0; --jj) {
        const int64_t p = walk.pixel(ii, jj), up = p - walk.up, left = p - walk.left;
        const T* ac = s.act + p * s.x_stride;
        T* d = s.x + p * s.x_stride;
        T* bh = below_h.data() + jj * hid;
        T* bc = below_c.data() + jj * hid;
        T* prev = &prev_buf[filled * 2 * hid];
        for (int64_t k = 0; k < hid; ++k) {
          const T in_g = ac[k], f_up = ac[hid + k], f_left = ac[2 * hid + k];
          const T out_g = ac[3 * hid + k], cand = ac[4 * hid + k];
          const T c_up = ii > 0 ? s.cv(up, k) : T(0);
          const T c_left = jj > 0 ? s.cv(left, k) : T(0);
          prev[k] = ii > 0 ? s.hv(up, k) : T(0);
          prev[hid + k] = jj > 0 ? s.hv(left, k) : T(0);
          const T dh = gh[k * s.hw + p] + bh[k] + right_h[k];
          const T tc = tanh_fast(s.cv(p, k));
          const T dc = bc[k] + right_c[k] + dh * out_g * (T(1) - tc * tc);
          d[k] = dc * cand * in_g * (T(1) - in_g);
          d[hid + k] = dc * c_up * f_up * (T(1) - f_up);
          d[2 * hid + k] = dc * c_left * f_left * (T(1) - f_left);
          d[3 * hid + k] = dh * tc * out_g * (T(1) - out_g);
          d[4 * hid + k] = dc * in_g * (T(1) - cand * cand);
          bc[k] = dc * f_up;         // from now on: the gradient for (ii-1, jj)
          right_c[k] = dc * f_left;  // for (ii, jj-1)
        }
        std::fill(dprev.begin(), dprev.end(), T(0));
        for (int64_t q = 0; q < G; ++q) axpy(dprev.data(), d[q], w + q * 2 * hid, 2 * hid);
        da_buf[filled] = d;
        if (++filled == kChunk) flush();
        for (int64_t k = 0; k < hid; ++k) {
          bh[k] = dprev[k];
          right_h[k] = dprev[hid + k];
        }
      }
    }
    flush();
  }
}

// Calls f with the hidden size as a compile-time constant when it is small (the per-step
// loops are then unrolled: 1.3x on a 2-unit layer), else with 0 (run-time size).
template <typename F>
void with_hidden(int64_t hid, F&& f) {
  switch (hid) {
    case 1: f(std::integral_constant<int64_t, 1>{}); break;
    case 2: f(std::integral_constant<int64_t, 2>{}); break;
    case 3: f(std::integral_constant<int64_t, 3>{}); break;
    case 4: f(std::integral_constant<int64_t, 4>{}); break;
    default: f(std::integral_constant<int64_t, 0>{});
  }
}

void check(const torch::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions");
}

// (xp (B, H, W, 4, 5h), u_t (4, 2h, 5h)) -> (h (B, 4h, H, W), c, act)
std::vector<torch::Tensor> forward(torch::Tensor xp, torch::Tensor u_t) {
  check(xp, "xp", 5);
  check(u_t, "u_t", 3);
  const int64_t batch = xp.size(0), height = xp.size(1), width = xp.size(2), G = xp.size(4);
  const int64_t hid = G / 5;
  TORCH_CHECK(xp.size(3) == kDirs && G == 5 * hid, "xp must be (B, H, W, 4, 5h)");
  TORCH_CHECK(u_t.size(0) == kDirs && u_t.size(1) == 2 * hid && u_t.size(2) == G,
              "u_t must be (4, 2h, 5h)");
  TORCH_CHECK(u_t.scalar_type() == xp.scalar_type(), "xp and u_t must have the same dtype");
  auto h = torch::empty({batch, kDirs * hid, height, width}, xp.options());
  auto c = torch::empty({batch, kDirs, height, width, hid}, xp.options());
  auto act = torch::empty_like(xp);
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "mdlstm_forward", [&] {
    with_hidden(hid, [&](auto HID) {
      scan_forward<scalar_t, HID()>(xp.data_ptr<scalar_t>(), u_t.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
                                    c.data_ptr<scalar_t>(), act.data_ptr<scalar_t>(),
                                    batch * kDirs, height, width, hid);
    });
  });
  return {h, c, act};
}

// (grad_h, h, c, act, u (4, 5h, 2h)) -> (da (B, H, W, 4, 5h), du (B * 4, 5h, 2h))
std::vector<torch::Tensor> backward(torch::Tensor grad_h, torch::Tensor h, torch::Tensor c,
                                    torch::Tensor act, torch::Tensor u) {
  check(grad_h, "grad_h", 4);
  check(h, "h", 4);
  check(c, "c", 5);
  check(act, "act", 5);
  check(u, "u", 3);
  TORCH_CHECK(grad_h.sizes() == h.sizes(), "grad_h must have the shape of h");
  const int64_t batch = act.size(0), height = act.size(1), width = act.size(2);
  const int64_t hid = act.size(4) / 5;
  auto da = torch::empty_like(act);
  auto du = torch::empty({batch * kDirs, 5 * hid, 2 * hid}, act.options());
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "mdlstm_backward", [&] {
    with_hidden(hid, [&](auto HID) {
      scan_backward<scalar_t, HID()>(grad_h.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(), c.data_ptr<scalar_t>(),
                                     act.data_ptr<scalar_t>(), u.data_ptr<scalar_t>(), da.data_ptr<scalar_t>(),
                                     du.data_ptr<scalar_t>(), batch * kDirs, height, width, hid);
    });
  });
  return {da, du};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "2D LSTM scan forward: (xp, u_t) -> (h, c, act)");
  m.def("backward", &backward, "2D LSTM scan backward: (grad_h, h, c, act, u) -> (da, du per scan)");
}
