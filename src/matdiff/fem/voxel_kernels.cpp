// Fused element-by-element stiffness product y = K u on structured voxel grids (CPU, float32 / float64).
//
// One pass per element row: the element products run vectorized across the row's elements, reading the node
// rows the row touches and summing the element forces into them (in place, or through small buffers where
// the periodic wrap or a partial last vector needs them, see RowBuffers). Nothing of size n_el x n_loc is
// ever formed, which is what the eager PyTorch path (gather, two GEMMs, scatter) spends most of its memory
// traffic on.
//
// Fields are contiguous (B*R, d, *nodes) with nodes (y, x) in 2D and (z, y, x) in 3D, n + 1 per axis
// (Dirichlet grid) or n (periodic grid, node n is node 0). Local dof order as in matdiff.fem.elements:
// dof = corner * d + component, corners lexicographic over the axes, x fastest.
//
// Element matrices are either isotropic, k_e = lam_e K_lam + mu_e K_mu with coef (B, 2, n_el) and the two
// reference matrices (2, n_loc, n_loc) of voxels of sides h (2D: dense products with them; 3D: by sum
// factorization, which evaluates the same quadrature itself from h), or given per element as the packed upper
// triangle kp (B, rows, padded_row_length(n_x) / kLanes, n_loc (n_loc + 1) / 2, kLanes): pairs (i <= j) row
// by row, for each vector of elements of a row, rows padded with zero elements to whole vectors (full loads
// only, and one sequential stream through memory).
//
// An epilogue can fold the step that follows a product into the same call (Epilogue below).
//
// Threads: element planes (z in 3D, y in 2D) of one colour write disjoint node planes, so each colour is a
// parallel loop over (field, plane); rows within a plane run in order.

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

template <typename T>
constexpr int kLanes = 64 / sizeof(T);  // one 512-bit vector

template <typename T, int D>
struct Element {
  static constexpr int NC = 1 << D;         // corners
  static constexpr int NLOC = NC * D;       // local dofs
  static constexpr int NROW = NC / 2 * D;   // node rows (plane/row offset x component) an element row touches
  static constexpr int NPAIR = NLOC * (NLOC + 1) / 2;
};

struct Grid {
  int64_t el[3];     // elements per axis (plane, row, x); 2D: row axis has 1 element and 1 node
  int64_t nodes[3];  // nodes per axis, same convention
  bool periodic;
  int64_t node_count() const { return nodes[0] * nodes[1] * nodes[2]; }
  int64_t el_count() const { return el[0] * el[1] * el[2]; }
};

// Offset (within one component) of the node row at plane a, row b (wrapped on periodic grids).
inline int64_t row_offset(const Grid& g, int64_t a, int64_t b) {
  return ((a % g.nodes[0]) * g.nodes[1] + (b % g.nodes[1])) * g.nodes[2];
}

// The node rows an element row reads and writes. Where every vector load and store of the row stays inside
// its own node rows (closed grid, n_x a multiple of the vector length) they are the field's rows themselves;
// else copies with the periodic wrap and zero padding, added back by end_row.
template <typename T, int D>
struct RowBuffers {
  using E = Element<T, D>;
  bool direct;
  int64_t width;  // padded row length of the copies: >= n_x + 1 + kLanes
  std::vector<T> in, out;
  const T* in_ptr[E::NROW];
  T* out_ptr[E::NROW];
  explicit RowBuffers(const Grid& g)
      : direct(!g.periodic && g.el[2] % kLanes<T> == 0),
        width((g.el[2] + 1 + 2 * kLanes<T>) / kLanes<T> * kLanes<T>),
        in(direct ? 0 : E::NROW * width),
        out(direct ? 0 : E::NROW * width) {}
  const T* in_row(int r) const { return in_ptr[r]; }
  T* out_row(int r) const { return out_ptr[r]; }
};

// Offset (within one component) of the node row that corners q of the element row at (a, b) lie on: q indexes
// the (plane, row) corner offsets, the row buffers hold node row q * D + c for component c.
template <int D>
inline int64_t corner_row_offset(const Grid& g, int q, int64_t a, int64_t b) {
  return D == 3 ? row_offset(g, a + (q >> 1), b + (q & 1)) : row_offset(g, a + q, 0);
}

template <typename T, int D>
void begin_row(const Grid& g, const T* u, T* y, int64_t a, int64_t b, RowBuffers<T, D>& buf) {
  using E = Element<T, D>;
  const int64_t nx = g.el[2], nn = g.node_count();
  for (int q = 0; q < E::NC / 2; ++q) {
    const int64_t off = corner_row_offset<D>(g, q, a, b);
    for (int c = 0; c < D; ++c) {
      const int r = q * D + c;
      const T* src = u + c * nn + off;
      if (buf.direct) {
        buf.in_ptr[r] = src;
        buf.out_ptr[r] = y + c * nn + off;
        continue;
      }
      T* dst = buf.in.data() + r * buf.width;
      std::memcpy(dst, src, sizeof(T) * (g.periodic ? nx : nx + 1));
      if (g.periodic) dst[nx] = src[0];
      std::memset(dst + nx + 1, 0, sizeof(T) * (buf.width - nx - 1));
      buf.in_ptr[r] = dst;
      buf.out_ptr[r] = buf.out.data() + r * buf.width;
    }
  }
  if (!buf.direct) std::memset(buf.out.data(), 0, sizeof(T) * buf.out.size());
}

template <typename T, int D>
void end_row(const Grid& g, T* y, int64_t a, int64_t b, RowBuffers<T, D>& buf) {
  using E = Element<T, D>;
  if (buf.direct) return;
  const int64_t nx = g.el[2], nn = g.node_count();
  for (int q = 0; q < E::NC / 2; ++q) {
    const int64_t off = corner_row_offset<D>(g, q, a, b);
    for (int c = 0; c < D; ++c) {
      const T* src = buf.out_row(q * D + c);
      T* dst = y + c * nn + off;
      for (int64_t x = 0; x < nx; ++x) dst[x] += src[x];
      if (g.periodic) dst[0] += src[nx]; else dst[nx] += src[nx];
    }
  }
}

// One vector of kLanes<T> values (GCC/Clang vector extension: 512 bits, split by the compiler where the CPU
// has narrower registers).
// (An attribute on a dependent alias template is ignored, hence the two explicit types.)
template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(64)));
};
template <typename T>
using Vec = typename VecOf<T>::type;

template <typename T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof(v));
}

// Row length of the packed element matrices: n_x rounded up to whole vectors (the padding holds zeros).
template <typename T>
inline int64_t padded_row_length(int64_t nx) {
  return (nx + kLanes<T> - 1) / kLanes<T> * kLanes<T>;
}

// Per-lane element data p[x0 + l] of a row of nx elements; 0 past the row end.
template <typename T>
inline Vec<T> load_lanes(const T* p, int64_t x0, int64_t nx) {
  if (x0 + kLanes<T> <= nx) return load(p + x0);
  alignas(64) T tmp[kLanes<T>];
  for (int l = 0; l < kLanes<T>; ++l) tmp[l] = x0 + l < nx ? p[x0 + l] : T(0);
  return load(tmp);
}

// Element vectors of the lanes starting at element x0: ue[j] for dof j = corner * D + component.
template <typename T, int D>
inline void element_vectors(RowBuffers<T, D>& buf, int64_t x0, Vec<T>* ue) {
  using E = Element<T, D>;
  for (int j = 0; j < E::NLOC; ++j) {
    const int corner = j / D, c = j % D;
    ue[j] = load(buf.in_row((corner >> 1) * D + c) + x0 + (corner & 1));
  }
}

template <typename T, int D>
inline void add_forces(RowBuffers<T, D>& buf, int64_t x0, const Vec<T>* f) {
  using E = Element<T, D>;
  for (int i = 0; i < E::NLOC; ++i) {
    const int corner = i / D, c = i % D;
    T* dst = buf.out_row((corner >> 1) * D + c) + x0 + (corner & 1);
    store(dst, load(dst) + f[i]);
  }
}

// Isotropic bilinear quads (2D): the two dense 8 x 8 products, all 8 rows of K at once (16 independent
// accumulation chains). 3D uses SumFactorRow.
template <typename T, int D>
struct IsotropicRow {
  using E = Element<T, D>;
  static_assert(D == 2, "3D isotropic products use SumFactorRow");
  static constexpr int IB = E::NLOC;  // rows of K per pass
  const T* coef;                      // (2, n_el) of this sample
  const T* kref;                      // (2, n_loc, n_loc)
  int64_t n_el;
  void operator()(RowBuffers<T, D>& buf, int64_t row, int64_t nx) const {
    const int64_t e0 = row * nx;
    Vec<T> ue[E::NLOC], f[E::NLOC];
    const T* kl = kref;
    const T* km = kref + E::NLOC * E::NLOC;
    for (int64_t x0 = 0; x0 < nx; x0 += kLanes<T>) {
      const Vec<T> lam = load_lanes(coef + e0, x0, nx), mu = load_lanes(coef + n_el + e0, x0, nx);
      element_vectors<T, D>(buf, x0, ue);
      for (int i0 = 0; i0 < E::NLOC; i0 += IB) {
        Vec<T> sl[IB] = {}, sm[IB] = {};
        for (int j = 0; j < E::NLOC; ++j) {
          for (int ii = 0; ii < IB; ++ii) {
            sl[ii] += kl[(i0 + ii) * E::NLOC + j] * ue[j];
            sm[ii] += km[(i0 + ii) * E::NLOC + j] * ue[j];
          }
        }
        for (int ii = 0; ii < IB; ++ii) f[i0 + ii] = lam * sl[ii] + mu * sm[ii];
      }
      add_forces<T, D>(buf, x0, f);
    }
  }
};

// Isotropic trilinear hexahedra by sum factorization: the displacement gradient at the 2x2x2 Gauss points
// through one-dimensional differences and interpolations, the stress there, and the transposed steps back to
// the corner forces: ~600 operations per element instead of the 1152 multiply-adds of the two dense 24 x 24
// products, with the same quadrature (so the same operator up to rounding). h: element sizes (z, y, x).
template <typename T>
struct SumFactorRow {
  using E = Element<T, 3>;
  const T* coef;  // (2, n_el) of this sample
  int64_t n_el;
  T h[3];

  // Pair (a at gauss point 0, b at gauss point 1) -> node values (sum of N_0 a, N_1 b), N_0 = 1 - g, N_1 = g.
  static inline void to_nodes(Vec<T> a, Vec<T> b, T g0, T g1, Vec<T>& n0, Vec<T>& n1) {
    n1 = g0 * a + g1 * b;
    n0 = (a + b) - n1;
  }

  // Values s[gA][gB] at Gauss points of two axes -> node values t[oA][oB] (transposed interpolation).
  static inline void to_nodes_2d(const Vec<T> (&s)[2][2], T g0, T g1, Vec<T> (&t)[2][2]) {
    Vec<T> m[2][2];  // m[gA][oB]
    for (int ga = 0; ga < 2; ++ga) to_nodes(s[ga][0], s[ga][1], g0, g1, m[ga][0], m[ga][1]);
    for (int ob = 0; ob < 2; ++ob) to_nodes(m[0][ob], m[1][ob], g0, g1, t[0][ob], t[1][ob]);
  }

  void operator()(RowBuffers<T, 3>& buf, int64_t row, int64_t nx) const {
    const T g[2] = {T(0.5 - 0.5 / 1.7320508075688772), T(0.5 + 0.5 / 1.7320508075688772)};
    const T ih[3] = {T(1) / h[0], T(1) / h[1], T(1) / h[2]};
    const T w = h[0] * h[1] * h[2] / T(8);
    const int64_t e0 = row * nx;
    Vec<T> ue[E::NLOC], f[E::NLOC];
    for (int64_t x0 = 0; x0 < nx; x0 += kLanes<T>) {
      const Vec<T> lam = w * load_lanes(coef + e0, x0, nx), mu = w * load_lanes(coef + n_el + e0, x0, nx);
      element_vectors<T, 3>(buf, x0, ue);
      // d u_c / d(z, y, x) at the Gauss points: gz[c][gy][gx], gy[c][gz][gx], gx[c][gz][gy] (each derivative
      // is constant along its own axis).
      Vec<T> gz[3][2][2], gy[3][2][2], gx[3][2][2];
      for (int c = 0; c < 3; ++c) {
        auto v = [&](int oz, int oy, int ox) { return ue[(oz * 4 + oy * 2 + ox) * 3 + c]; };
        Vec<T> dx[2][2], ix[2][2][2];  // x difference / x interpolation at (oz, oy)
        for (int oz = 0; oz < 2; ++oz)
          for (int oy = 0; oy < 2; ++oy) {
            const Vec<T> d = v(oz, oy, 1) - v(oz, oy, 0);
            dx[oz][oy] = d * ih[2];
            for (int q = 0; q < 2; ++q) ix[oz][oy][q] = v(oz, oy, 0) + g[q] * d;
          }
        Vec<T> dy[2][2], ixy[2][2][2], dxy[2][2];  // dy[oz][gx], ixy[oz][gy][gx], dxy[oz][gy]
        for (int oz = 0; oz < 2; ++oz) {
          for (int q = 0; q < 2; ++q) {
            const Vec<T> d = ix[oz][1][q] - ix[oz][0][q];
            dy[oz][q] = d * ih[1];
            for (int p = 0; p < 2; ++p) ixy[oz][p][q] = ix[oz][0][q] + g[p] * d;
          }
          const Vec<T> d = dx[oz][1] - dx[oz][0];
          for (int p = 0; p < 2; ++p) dxy[oz][p] = dx[oz][0] + g[p] * d;
        }
        for (int p = 0; p < 2; ++p)
          for (int q = 0; q < 2; ++q) {
            gz[c][p][q] = (ixy[1][p][q] - ixy[0][p][q]) * ih[0];
            gy[c][p][q] = dy[0][q] + g[p] * (dy[1][q] - dy[0][q]);
            gx[c][p][q] = dxy[0][q] + g[p] * (dxy[1][q] - dxy[0][q]);
          }
      }
      // stress sigma_ca at each point, summed along axis a: sz[c][gy][gx], sy[c][gz][gx], sx[c][gz][gy]
      Vec<T> sz[3][2][2] = {}, sy[3][2][2] = {}, sx[3][2][2] = {};
      for (int qz = 0; qz < 2; ++qz)
        for (int qy = 0; qy < 2; ++qy)
          for (int qx = 0; qx < 2; ++qx) {
            auto grad = [&](int c, int a) {
              return a == 0 ? gz[c][qy][qx] : a == 1 ? gy[c][qz][qx] : gx[c][qz][qy];
            };
            auto add = [&](int c, int a, Vec<T> s) {
              if (a == 0) sz[c][qy][qx] += s;
              else if (a == 1) sy[c][qz][qx] += s;
              else sx[c][qz][qy] += s;
            };
            const Vec<T> lt = lam * (grad(0, 0) + grad(1, 1) + grad(2, 2));
            for (int c = 0; c < 3; ++c) {
              add(c, c, lt + (mu + mu) * grad(c, c));
              for (int a = c + 1; a < 3; ++a) {
                const Vec<T> s = mu * (grad(c, a) + grad(a, c));
                add(c, a, s);
                add(a, c, s);
              }
            }
          }
      for (int c = 0; c < 3; ++c) {
        auto fc = [&](int oz, int oy, int ox) -> Vec<T>& { return f[(oz * 4 + oy * 2 + ox) * 3 + c]; };
        Vec<T> tz[2][2], ty[2][2], tx[2][2];  // tz[oy][ox], ty[oz][ox], tx[oz][oy]
        to_nodes_2d(sz[c], g[0], g[1], tz);
        to_nodes_2d(sy[c], g[0], g[1], ty);
        to_nodes_2d(sx[c], g[0], g[1], tx);
        for (int oz = 0; oz < 2; ++oz)
          for (int oy = 0; oy < 2; ++oy)
            for (int ox = 0; ox < 2; ++ox)
              fc(oz, oy, ox) = (oz ? ih[0] : -ih[0]) * tz[oy][ox] + (oy ? ih[1] : -ih[1]) * ty[oz][ox] +
                               (ox ? ih[2] : -ih[2]) * tx[oz][oy];
      }
      add_forces<T, 3>(buf, x0, f);
    }
  }
};

template <typename T, int D>
struct PackedRow {
  using E = Element<T, D>;
  const T* kp;  // (rows, vectors per row, n_pair, kLanes) of this sample
  void operator()(RowBuffers<T, D>& buf, int64_t row, int64_t nx) const {
    Vec<T> ue[E::NLOC], f[E::NLOC];
    const T* k = kp + row * padded_row_length<T>(nx) * E::NPAIR;  // read in order, one stream
    for (int64_t x0 = 0; x0 < nx; x0 += kLanes<T>) {
      element_vectors<T, D>(buf, x0, ue);
      for (int i = 0; i < E::NLOC; ++i) f[i] = Vec<T>{};
      for (int i = 0; i < E::NLOC; ++i) {
        Vec<T> even = load(k) * ue[i], odd = {};  // diagonal; two chains for row i
        k += kLanes<T>;
        for (int j = i + 1; j < E::NLOC; ++j, k += kLanes<T>) {
          const Vec<T> kij = load(k);
          if ((j - i) % 2) odd += kij * ue[j]; else even += kij * ue[j];
          f[j] += kij * ue[i];
        }
        f[i] += even + odd;
      }
      add_forces<T, D>(buf, x0, f);
    }
  }
};

// Colour of element plane a: planes of one colour touch disjoint node planes (a periodic grid with an odd
// plane count puts its last plane, which wraps onto plane 0, in a colour of its own).
inline int plane_colour(const Grid& g, int64_t a) {
  if (g.periodic && g.el[0] % 2 == 1 && a == g.el[0] - 1) return 2;
  return int(a % 2);
}

// What is written to y after the product K u: K u itself, mask * K u (mask per node, (nodes)), the residual
// r - K u (times the mask w if given), or the damped Jacobi step u + w (r - K u) (w per sample,
// (B, 1, d, *nodes)).
enum Epilogue : int { kProduct = 0, kMasked = 1, kResidual = 2, kJacobi = 3 };

template <typename T>
struct Finish {
  int mode;
  const T* u;
  const T* r;
  const T* w;
  int64_t rhs;
  // The epilogue on nodes [begin, begin + count) of every component of field `field`.
  void operator()(T* y, int64_t field, int comps, int64_t nodes, int64_t begin, int64_t count) const {
    if (mode == kProduct) return;
    const int64_t field_size = comps * nodes;
    for (int c = 0; c < comps; ++c) {
      const int64_t off = field * field_size + c * nodes + begin;
      T* yf = y + off;
      const T* rf = r + off;
      if (mode == kMasked) {
        const T* m = w + begin;
        for (int64_t n = 0; n < count; ++n) yf[n] *= m[n];
      } else if (mode == kResidual && w == nullptr) {
        for (int64_t n = 0; n < count; ++n) yf[n] = rf[n] - yf[n];
      } else if (mode == kResidual) {
        const T* m = w + begin;
        for (int64_t n = 0; n < count; ++n) yf[n] = m[n] * (rf[n] - yf[n]);
      } else {
        const T* uf = u + off;
        const T* wf = w + (field / rhs) * field_size + c * nodes + begin;
        for (int64_t n = 0; n < count; ++n) yf[n] = uf[n] + wf[n] * (rf[n] - yf[n]);
      }
    }
  }
};

// The element planes that touch node plane p: p - 1 and p (wrapped on periodic grids), those that exist.
inline int touching_planes(const Grid& g, int64_t p, int64_t* out) {
  int n = 0;
  const int64_t before = g.periodic ? (p + g.el[0] - 1) % g.el[0] : p - 1;
  if (before >= 0) out[n++] = before;
  if (p < g.el[0] && (n == 0 || out[0] != p)) out[n++] = p;
  return n;
}

// Element plane (of those touching node plane p) whose colour runs first (first = true) or last: the task
// that zeroes node plane p before adding to it, and the one that applies the epilogue once it is complete.
inline int64_t plane_in_charge(const Grid& g, int64_t p, bool first) {
  int64_t planes[2] = {0, 0};
  const int n = touching_planes(g, p, planes);
  int64_t best = planes[0];
  for (int i = 1; i < n; ++i) {
    const bool earlier = plane_colour(g, planes[i]) < plane_colour(g, best);
    if (earlier == first) best = planes[i];
  }
  return best;
}

// y = epilogue(K u): colour by colour, each task (field, element plane a) zeroes the node planes a and a + 1
// it is first to touch, adds its element forces, and finishes the node planes it is last to touch, while
// they are still in cache. No other task of the same colour touches those node planes.
template <typename T, int D, typename RowOp, typename MakeOp>
void apply(const T* u, T* y, int64_t fields, int64_t rhs, const Grid& g, MakeOp make_op, const Finish<T>& fin,
           int threads) {
  const int64_t nn = g.node_count(), field_size = D * nn, plane_size = g.nodes[1] * g.nodes[2];
  std::vector<int64_t> planes[3];  // element planes by colour
  for (int64_t a = 0; a < g.el[0]; ++a) planes[plane_colour(g, a)].push_back(a);
#pragma omp parallel num_threads(threads)
  {
    RowBuffers<T, D> buf(g);
    for (const std::vector<int64_t>& colour : planes) {
      const int64_t np = int64_t(colour.size()), tasks = fields * np;
#pragma omp for schedule(static)
      for (int64_t t = 0; t < tasks; ++t) {
        const int64_t field = t / np, a = colour[t % np];
        const int64_t node_planes[2] = {a, (a + 1) % g.nodes[0]};
        const RowOp op = make_op(field / rhs);
        const T* uf = u + field * field_size;
        T* yf = y + field * field_size;
        for (int64_t p : node_planes)
          if (plane_in_charge(g, p, true) == a)
            for (int c = 0; c < D; ++c) std::memset(yf + c * nn + p * plane_size, 0, sizeof(T) * plane_size);
        for (int64_t b = 0; b < g.el[1]; ++b) {
          begin_row<T, D>(g, uf, yf, a, b, buf);
          op(buf, a * g.el[1] + b, g.el[2]);
          end_row<T, D>(g, yf, a, b, buf);
        }
        for (int64_t p : node_planes)
          if (plane_in_charge(g, p, false) == a) fin(y, field, D, nn, p * plane_size, plane_size);
      }  // implicit barrier: a colour is complete before the next starts
    }
  }
}

inline Grid make_grid(int dim, const int64_t* el, int periodic) {
  Grid g;
  g.periodic = periodic != 0;
  if (dim == 3) {
    for (int a = 0; a < 3; ++a) g.el[a] = el[a];
  } else {
    g.el[0] = el[0];
    g.el[1] = 1;
    g.el[2] = el[1];
  }
  for (int a = 0; a < 3; ++a) g.nodes[a] = (dim == 2 && a == 1) ? 1 : g.el[a] + (g.periodic ? 0 : 1);
  return g;
}

// The arguments every product shares: fields u, y (batch * rhs, dim, *nodes), the epilogue and its inputs.
template <typename T>
struct Call {
  const T* u;
  T* y;
  int64_t batch, rhs;
  int dim;
  const int64_t* el;
  int periodic, mode;
  const T* r;
  const T* w;
  int threads;
};

template <typename T, int D, typename RowOp, typename MakeOp>
void run(const Call<T>& c, const Grid& g, MakeOp make_op) {
  const Finish<T> fin{c.mode, c.u, c.r, c.w, c.rhs};
  apply<T, D, RowOp>(c.u, c.y, c.batch * c.rhs, c.rhs, g, make_op, fin, c.threads);
}

template <typename T, int D>
void isotropic(const Call<T>& c, const T* coef, const T* kref, const T* h) {
  const Grid g = make_grid(D, c.el, c.periodic);
  const int64_t n_el = g.el_count();
  if constexpr (D == 3) {  // voxel sides h (z, y, x), those of the reference matrices (unused here)
    auto make = [=](int64_t b) { return SumFactorRow<T>{coef + b * 2 * n_el, n_el, {h[0], h[1], h[2]}}; };
    run<T, 3, SumFactorRow<T>>(c, g, make);
  } else {
    auto make = [=](int64_t b) { return IsotropicRow<T, D>{coef + b * 2 * n_el, kref, n_el}; };
    run<T, D, IsotropicRow<T, D>>(c, g, make);
  }
}

template <typename T, int D>
void packed(const Call<T>& c, const T* kp) {
  const Grid g = make_grid(D, c.el, c.periodic);
  const int64_t per_sample = g.el[0] * g.el[1] * padded_row_length<T>(g.el[2]) * Element<T, D>::NPAIR;
  auto make = [=](int64_t b) { return PackedRow<T, D>{kp + b * per_sample}; };
  run<T, D, PackedRow<T, D>>(c, g, make);
}

template <typename T>
void isotropic_dispatch(const Call<T>& c, const T* coef, const T* kref, const T* h) {
  if (c.dim == 2) isotropic<T, 2>(c, coef, kref, h);
  else isotropic<T, 3>(c, coef, kref, h);
}

template <typename T>
void packed_dispatch(const Call<T>& c, const T* kp) {
  if (c.dim == 2) packed<T, 2>(c, kp);
  else packed<T, 3>(c, kp);
}

// Vector steps of batched PCG on fields (fields, size): dot products with float64 accumulation, and the
// update x += alpha p, r -= alpha q with the new ||r||^2 in the same pass.
template <typename T>
void dots(const T* u, const T* v, double* out, int64_t fields, int64_t size, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t f = 0; f < fields; ++f) {
    const T* a = u + f * size;
    const T* b = v + f * size;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < size; ++i) sum += double(a[i]) * double(b[i]);
    out[f] = sum;
  }
}

template <typename T>
void cg_update(T* x, T* r, const T* p, const T* q, const double* alpha, double* rr, int64_t fields,
               int64_t size, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t f = 0; f < fields; ++f) {
    const T a = T(alpha[f]);
    T* xf = x + f * size;
    T* rf = r + f * size;
    const T* pf = p + f * size;
    const T* qf = q + f * size;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < size; ++i) {
      xf[i] += a * pf[i];
      rf[i] -= a * qf[i];
      sum += double(rf[i]) * double(rf[i]);
    }
    rr[f] = sum;
  }
}

// Dense symmetric element matrices ke (B, n_el, n_loc, n_loc) into the packed layout of PackedRow.
template <typename T, int D>
void pack(const T* ke, T* kp, int64_t batch, const int64_t* el, int threads) {
  using E = Element<T, D>;
  const Grid g = make_grid(D, el, 0);
  const int64_t nx = g.el[2], rows = g.el[0] * g.el[1], vectors = padded_row_length<T>(nx) / kLanes<T>;
  const int64_t matrix = int64_t(E::NLOC) * E::NLOC;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t br = 0; br < batch * rows; ++br) {
    const T* src = ke + br * nx * matrix;
    T* dst = kp + br * vectors * E::NPAIR * kLanes<T>;
    for (int64_t v = 0; v < vectors; ++v) {
      int p = 0;
      for (int i = 0; i < E::NLOC; ++i)
        for (int j = i; j < E::NLOC; ++j, ++p)
          for (int l = 0; l < kLanes<T>; ++l) {
            const int64_t x = v * kLanes<T> + l;
            dst[(v * E::NPAIR + p) * kLanes<T> + l] = x < nx ? src[x * matrix + i * E::NLOC + j] : T(0);
          }
    }
  }
}

// (Bi/tri)linear transfer between a grid and the twice finer one (LinearTransfer in transfer.py). Along one
// axis, fine node i takes coarse node i / 2 (i even) or the mean of its two neighbours (i odd); the periodic
// grid wraps, and an axis of one node (the 2D row axis here) maps to itself.
struct AxisWeights {
  int n;
  int64_t index[3];
  double weight[3];
};

// Coarse nodes (and weights) that fine node i interpolates from.
inline AxisWeights prolong_axis(int64_t i, int64_t n_coarse, bool periodic) {
  if (n_coarse == 1 || i % 2 == 0) return {1, {i / 2, 0, 0}, {1.0, 0, 0}};
  const int64_t right = periodic ? (i / 2 + 1) % n_coarse : i / 2 + 1;
  return {2, {i / 2, right, 0}, {0.5, 0.5, 0}};
}

// Fine nodes (and weights) that coarse node c receives from under restriction (the transpose).
inline AxisWeights restrict_axis(int64_t c, int64_t n_fine, bool periodic) {
  if (n_fine == 1) return {1, {0, 0, 0}, {1.0, 0, 0}};
  AxisWeights w{1, {2 * c, 0, 0}, {1.0, 0, 0}};
  for (int64_t f : {2 * c - 1, 2 * c + 1}) {
    if (periodic) f = (f + n_fine) % n_fine;
    else if (f < 0 || f >= n_fine) continue;
    w.index[w.n] = f;
    w.weight[w.n++] = 0.5;
  }
  return w;
}

// Node counts (plane, row, x) of the grid twice as fine as one with `coarse` nodes.
inline void finer_nodes(const int64_t* coarse, bool periodic, int64_t* fine) {
  for (int a = 0; a < 3; ++a) fine[a] = coarse[a] == 1 ? 1 : (periodic ? 2 * coarse[a] : 2 * coarse[a] - 1);
}

// xf = base + P xc (base may be null: xf = P xc).
template <typename T>
void prolong(const T* xc, T* xf, const T* base, int64_t fields, const int64_t* nc, bool periodic,
             int threads) {
  int64_t nf[3];
  finer_nodes(nc, periodic, nf);
  const int64_t size_c = nc[0] * nc[1] * nc[2], size_f = nf[0] * nf[1] * nf[2];
  const int64_t tasks = fields * nf[0] * nf[1];
#pragma omp parallel num_threads(threads)
  {
    std::vector<T> t(nc[2]);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t field = task / (nf[0] * nf[1]), a = task / nf[1] % nf[0], b = task % nf[1];
      const AxisWeights wa = prolong_axis(a, nc[0], periodic), wb = prolong_axis(b, nc[1], periodic);
      std::fill(t.begin(), t.end(), T(0));
      for (int i = 0; i < wa.n; ++i)
        for (int j = 0; j < wb.n; ++j) {
          const T w = T(wa.weight[i] * wb.weight[j]);
          const T* src = xc + field * size_c + (wa.index[i] * nc[1] + wb.index[j]) * nc[2];
          for (int64_t x = 0; x < nc[2]; ++x) t[x] += w * src[x];
        }
      const int64_t row = field * size_f + (a * nf[1] + b) * nf[2];
      T* dst = xf + row;
      if (nc[2] == 1) {
        dst[0] = t[0];
      } else {
        for (int64_t x = 0; x + 1 < nc[2]; ++x) {
          dst[2 * x] = t[x];
          dst[2 * x + 1] = T(0.5) * (t[x] + t[x + 1]);
        }
        dst[2 * (nc[2] - 1)] = t[nc[2] - 1];
        if (periodic) dst[2 * nc[2] - 1] = T(0.5) * (t[nc[2] - 1] + t[0]);
      }
      if (base != nullptr)
        for (int64_t x = 0; x < nf[2]; ++x) dst[x] += base[row + x];
    }
  }
}

template <typename T>
void restrict_(const T* xf, T* xc, int64_t fields, const int64_t* nc, bool periodic, int threads) {
  int64_t nf[3];
  finer_nodes(nc, periodic, nf);
  const int64_t size_c = nc[0] * nc[1] * nc[2], size_f = nf[0] * nf[1] * nf[2];
  const int64_t tasks = fields * nc[0] * nc[1], n = nc[2];
#pragma omp parallel num_threads(threads)
  {
    std::vector<T> t(nf[2] + 1);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t field = task / (nc[0] * nc[1]), a = task / nc[1] % nc[0], b = task % nc[1];
      const AxisWeights wa = restrict_axis(a, nf[0], periodic), wb = restrict_axis(b, nf[1], periodic);
      std::fill(t.begin(), t.end(), T(0));  // the fine rows summed with their weights
      for (int i = 0; i < wa.n; ++i)
        for (int j = 0; j < wb.n; ++j) {
          const T w = T(wa.weight[i] * wb.weight[j]);
          const T* src = xf + field * size_f + (wa.index[i] * nf[1] + wb.index[j]) * nf[2];
          for (int64_t x = 0; x < nf[2]; ++x) t[x] += w * src[x];
        }
      T* dst = xc + field * size_c + (a * nc[1] + b) * n;
      if (n == 1) {
        dst[0] = t[0];
        continue;
      }
      if (periodic) t[nf[2]] = t[0];  // fine node 2n wraps to 0: coarse node n - 1 reads it
      for (int64_t x = 1; x < n; ++x) dst[x] = t[2 * x] + T(0.5) * (t[2 * x - 1] + t[2 * x + 1]);
      dst[0] = t[0] + T(0.5) * t[1] + (periodic ? T(0.5) * t[nf[2] - 1] : T(0));
      if (!periodic) dst[n - 1] = t[2 * n - 2] + T(0.5) * t[2 * n - 3];
    }
  }
}

// Coarse node counts (plane, row, x) of a field of `dim` spatial axes.
inline void node_counts(int dim, const int64_t* nodes, int64_t* out) {
  out[0] = nodes[0];
  out[1] = dim == 3 ? nodes[1] : 1;
  out[2] = nodes[dim - 1];
}

}  // namespace

// The C entry points, one set per dtype (suffix f32 / f64):
//   matdiff_isotropic_S: y = epilogue(K u) (see Epilogue) with isotropic element matrices; u, y, r
//     (batch * rhs, dim, *nodes); coef (batch, 2, n_el); kref (2, n_loc, n_loc); h (dim,) voxel sides.
//   matdiff_packed_S: the same with packed per-element matrices kp (see PackedRow).
//   matdiff_prolong_S / matdiff_restrict_S: linear prolongation xc -> xf (plus base, if not null) and its
//     transpose for fields (fields, *nodes) of `dim` spatial axes; nodes_c: coarse node counts per axis.
//   matdiff_pack_S: dense element matrices ke (batch, n_el, n_loc, n_loc) into kp.
//   matdiff_dot_S, matdiff_cg_update_S: PCG vector steps (see dots, cg_update).
#define MATDIFF_EXPORTS(T, S)                                                                                \
  void matdiff_isotropic_##S(const T* u, T* y, int64_t batch, int64_t rhs, int dim, const int64_t* el,       \
                             int periodic, int mode, const T* r, const T* w, int threads, const T* coef,     \
                             const T* kref, const T* h) {                                                    \
    isotropic_dispatch(Call<T>{u, y, batch, rhs, dim, el, periodic, mode, r, w, threads}, coef, kref, h);    \
  }                                                                                                          \
  void matdiff_packed_##S(const T* u, T* y, int64_t batch, int64_t rhs, int dim, const int64_t* el,          \
                          int periodic, int mode, const T* r, const T* w, int threads, const T* kp) {        \
    packed_dispatch(Call<T>{u, y, batch, rhs, dim, el, periodic, mode, r, w, threads}, kp);                  \
  }                                                                                                          \
  void matdiff_prolong_##S(const T* xc, T* xf, const T* base, int64_t fields, int dim,                       \
                           const int64_t* nodes_c,                                                           \
                           int periodic, int threads) {                                                      \
    int64_t nc[3];                                                                                           \
    node_counts(dim, nodes_c, nc);                                                                           \
    prolong(xc, xf, base, fields, nc, periodic != 0, threads);                                               \
  }                                                                                                          \
  void matdiff_restrict_##S(const T* xf, T* xc, int64_t fields, int dim, const int64_t* nodes_c,             \
                            int periodic, int threads) {                                                     \
    int64_t nc[3];                                                                                           \
    node_counts(dim, nodes_c, nc);                                                                           \
    restrict_(xf, xc, fields, nc, periodic != 0, threads);                                                   \
  }                                                                                                          \
  void matdiff_pack_##S(const T* ke, T* kp, int64_t batch, int dim, const int64_t* el, int threads) {        \
    if (dim == 2) pack<T, 2>(ke, kp, batch, el, threads);                                                    \
    else pack<T, 3>(ke, kp, batch, el, threads);                                                             \
  }                                                                                                          \
  void matdiff_dot_##S(const T* u, const T* v, double* out, int64_t fields, int64_t size, int threads) {     \
    dots(u, v, out, fields, size, threads);                                                                  \
  }                                                                                                          \
  void matdiff_cg_update_##S(T* x, T* r, const T* p, const T* q, const double* alpha, double* rr,            \
                             int64_t fields, int64_t size, int threads) {                                    \
    cg_update(x, r, p, q, alpha, rr, fields, size, threads);                                                 \
  }

extern "C" {
MATDIFF_EXPORTS(float, f32)
MATDIFF_EXPORTS(double, f64)
}  // extern "C"
