// llmzoo's own CPU matmul for group-wise integer weights, for the few rows of a decode step.
//
// PyTorch's `_weight_int4pack_mm_for_cpu` is vectorised for bf16 only, which AVX2-only CPUs emulate:
// on SmolLM2-135M it was 58% of a compiled decode step (README, decode section). llama.cpp's answer,
// which this follows in spirit (not in code), is to turn the activations into integers once per step
// and run integer dot products against the stored codes. Here:
//
//   weight  W[n, 32 g + j] = scale[n, g] * c + offset[n, g]    (every GGUF legacy / k-quant group of
//           32 and llmzoo's int4 are this form: llmzoo/quant/gguf_blocks.py)
//   4-bit   codes[n, 16 g + i] = c(32 g + i) | c(32 g + 16 + i) << 4   (GGUF's own nibble order)
//   8-bit   codes[n, 32 g + j] = c(32 g + j) - 128 as int8, the offset shifted by 128 scale to match
//   input   x[m, 32 g + j] ~= dx[m, g] * q[m, 32 g + j], q int16 with |q| <= 32767 (one scale per group:
//           a relative error of 2^-16 of the group's largest value, ~256x finer than bf16's rounding)
//
//   y[m, n] = sum_g scale[n,g] dx[m,g] <c, q>_g  +  offset[n,g] sum_j x[m, 32 g + j]
//
// <c, q>_g is exact in int32 (|c| <= 128, 32 terms: < 2^28) by `_mm256_madd_epi16`; the offset term
// uses the exact fp32 sums of x. Threads split the output features (at::parallel_for, torch's pool).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cmath>
#include <vector>

namespace {

constexpr int kGroup = 32;
constexpr int kRowTile = 4;  // activation rows decoded against one weight group while it is in registers

// x (M, K) fp32 -> q (M, K) int16, dx (M, G) and sums (M, G) fp32.
void quantize_inputs(const float* x, int64_t M, int64_t K, int16_t* q, float* dx, float* sums) {
  const int64_t G = K / kGroup;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t g = 0; g < G; ++g) {
      const float* xg = x + m * K + g * kGroup;
      float amax = 0.f, sum = 0.f;
      for (int j = 0; j < kGroup; ++j) {
        amax = std::max(amax, std::fabs(xg[j]));
        sum += xg[j];
      }
      const float d = amax / 32767.f;
      const float inv = d > 0.f ? 1.f / d : 0.f;
      int16_t* qg = q + m * K + g * kGroup;
      for (int j = 0; j < kGroup; ++j) qg[j] = static_cast<int16_t>(std::nearbyint(xg[j] * inv));
      dx[m * G + g] = d;
      sums[m * G + g] = sum;
    }
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The group's 32 codes as two vectors of 16 int16 (elements 0-15 and 16-31).
template <int BITS>
inline void load_codes(const uint8_t* c, __m256i& lo, __m256i& hi) {
  if constexpr (BITS == 4) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c));
    const __m128i mask = _mm_set1_epi8(0x0F);
    lo = _mm256_cvtepu8_epi16(_mm_and_si128(packed, mask));
    hi = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), mask));
  } else {
    lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
    hi = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + 16)));
  }
}

// Output features [n, n + COLS) for activation rows [m0, m0 + ROWS). COLS features at once give
// independent accumulator chains (one chain waits out each FMA's latency) and share each q load.
template <int BITS, int ROWS, int COLS>
inline void tile(const uint8_t* codes, const float* scale, const float* offset, const int16_t* q,
                 const float* dx, const float* sums, float* y, int64_t m0, int64_t n, int64_t K, int64_t N) {
  const int64_t G = K / kGroup;
  const int64_t code_row = K * BITS / 8;
  const int64_t code_group = kGroup * BITS / 8;
  __m256 acc[COLS][ROWS];
  float off[COLS][ROWS];
  for (int c = 0; c < COLS; ++c)
    for (int r = 0; r < ROWS; ++r) {
      acc[c][r] = _mm256_setzero_ps();
      off[c][r] = 0.f;
    }
  for (int64_t g = 0; g < G; ++g) {
    __m256i lo[COLS], hi[COLS];
    for (int c = 0; c < COLS; ++c) load_codes<BITS>(codes + (n + c) * code_row + g * code_group, lo[c], hi[c]);
    for (int r = 0; r < ROWS; ++r) {
      const int64_t m = m0 + r;
      const int16_t* qg = q + m * K + g * kGroup;
      const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qg));
      const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qg + 16));
      const float d = dx[m * G + g], sum = sums[m * G + g];
      for (int c = 0; c < COLS; ++c) {
        const __m256i dot = _mm256_add_epi32(_mm256_madd_epi16(lo[c], q0), _mm256_madd_epi16(hi[c], q1));
        acc[c][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(scale[(n + c) * G + g] * d), acc[c][r]);
        off[c][r] += offset[(n + c) * G + g] * sum;
      }
    }
  }
  for (int c = 0; c < COLS; ++c)
    for (int r = 0; r < ROWS; ++r) y[(m0 + r) * N + n + c] = hsum(acc[c][r]) + off[c][r];
}

template <int BITS, int ROWS>
void row_tile(const uint8_t* codes, const float* scale, const float* offset, const int16_t* q,
              const float* dx, const float* sums, float* y, int64_t m0, int64_t n0, int64_t n1,
              int64_t K, int64_t N) {
  int64_t n = n0;
  for (; n + 2 <= n1; n += 2) tile<BITS, ROWS, 2>(codes, scale, offset, q, dx, sums, y, m0, n, K, N);
  if (n < n1) tile<BITS, ROWS, 1>(codes, scale, offset, q, dx, sums, y, m0, n, K, N);
}

template <int BITS>
void run(const uint8_t* codes, const float* scale, const float* offset, const int16_t* q, const float* dx,
         const float* sums, float* y, int64_t M, int64_t K, int64_t N) {
  // Enough features per task that the work is worth a thread; 16 keeps 49k-row LM heads well split.
  at::parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) {
    int64_t m0 = 0;
    for (; m0 + kRowTile <= M; m0 += kRowTile)
      row_tile<BITS, kRowTile>(codes, scale, offset, q, dx, sums, y, m0, n0, n1, K, N);
    switch (M - m0) {
      case 3: row_tile<BITS, 3>(codes, scale, offset, q, dx, sums, y, m0, n0, n1, K, N); break;
      case 2: row_tile<BITS, 2>(codes, scale, offset, q, dx, sums, y, m0, n0, n1, K, N); break;
      case 1: row_tile<BITS, 1>(codes, scale, offset, q, dx, sums, y, m0, n0, n1, K, N); break;
      default: break;
    }
  });
}

}  // namespace

// x (M, K) fp32, codes (N, K/2) uint8 (bits 4) or (N, K) int8 (bits 8), scale/offset (N, K/32) fp32.
torch::Tensor grouped_matmul(torch::Tensor x, torch::Tensor codes, torch::Tensor scale, torch::Tensor offset,
                             int64_t bits) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32, "x must be a 2-D float32 tensor");
  TORCH_CHECK(bits == 4 || bits == 8, "bits must be 4 or 8");
  const int64_t M = x.size(0), K = x.size(1), N = scale.size(0);
  TORCH_CHECK(K % kGroup == 0, "in_features must be a multiple of 32");
  TORCH_CHECK(codes.size(0) == N && codes.size(1) == K * bits / 8, "codes do not match the weight's shape");
  TORCH_CHECK(scale.size(1) == K / kGroup && offset.sizes() == scale.sizes(), "one scale and offset per group");
  x = x.contiguous();
  codes = codes.contiguous();
  scale = scale.contiguous();
  offset = offset.contiguous();
  auto y = torch::empty({M, N}, x.options());
  if (M == 0) return y;
  std::vector<int16_t> q(M * K);
  std::vector<float> dx(M * (K / kGroup)), sums(M * (K / kGroup));
  quantize_inputs(x.data_ptr<float>(), M, K, q.data(), dx.data(), sums.data());
  const auto* c = reinterpret_cast<const uint8_t*>(codes.data_ptr());
  if (bits == 4)
    run<4>(c, scale.data_ptr<float>(), offset.data_ptr<float>(), q.data(), dx.data(), sums.data(),
           y.data_ptr<float>(), M, K, N);
  else
    run<8>(c, scale.data_ptr<float>(), offset.data_ptr<float>(), q.data(), dx.data(), sums.data(),
           y.data_ptr<float>(), M, K, N);
  return y;
}

TORCH_LIBRARY(llmzoo, m) {
  m.def("grouped_matmul(Tensor x, Tensor codes, Tensor scale, Tensor offset, int bits) -> Tensor");
}

TORCH_LIBRARY_IMPL(llmzoo, CPU, m) {
  m.impl("grouped_matmul", &grouped_matmul);
}
