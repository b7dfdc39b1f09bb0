/*
 * steps.ccdb._kdf: multi-buffer key derivation for Cloud Controller's encrypted columns.
 *
 * Cloud Controller derives one AES key per row: EVP_BytesToKey(MD5, 2048 rounds) when the
 * row's salt has 8 characters, PBKDF2-HMAC-SHA256 otherwise. Each derivation is a chain of
 * thousands of one-block hashes, so hashing row by row through a hash library is dominated
 * by per-call overhead. Here the chains of many rows run side by side, one row per SIMD
 * lane: each vector instruction advances every row of a lane group by one step.
 *
 * The two lane kernels (the MD5 re-hash of a 16-byte digest, and one PBKDF2 iteration as
 * two SHA-256 compressions from precomputed ipad/opad states) are written once with
 * GCC/clang vector extensions and compiled for several instruction sets; the best one the
 * CPU supports is chosen at import. The variable-length first hash of each chain and the
 * HMAC key setup use the small scalar MD5 (RFC 1321) and SHA-256 (FIPS 180-4) below.
 *
 * The results are byte-exact: the tests compare every kernel with hashlib and with the
 * pure-Python path in crypto.py, which is what runs when this module is not built.
 *
 * With the keys derived, the remaining cost of a row is the AES-128-CBC of its value, a few
 * blocks: through the cryptography package most of it is the per-call wrapper objects. So
 * this module also does raw AES-128-CBC with AES-NI (x86 only), compared byte for byte with
 * cryptography by the tests; crypto.py keeps cryptography as the fallback.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>

#if !defined(__GNUC__)
#error "the lane kernels need GCC or clang vector extensions"
#endif

#if defined(__x86_64__) || defined(__i386__)
#define KDF_X86 1
#endif

/* Clears key material from the stack; the empty asm keeps the compiler from dropping the
 * memset as a dead store. (Python still holds the password; this only avoids leaving more
 * copies behind than necessary.) */
static void
secure_zero(void *p, size_t n)
{
    memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

/* Rows per kernel pass never exceed this (it sizes the lane buffers). */
#define KDF_MAX_LANES 64

/* Written as shifts and an or so that they apply to scalars and vectors alike; compilers
   turn them into rotate instructions (vprold on AVX-512). */
#define ROTL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define ROTR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

/* A vector of type vec with every lane set to x. */
#define SPLAT(vec, x) ((vec){0} + (uint32_t)(x))

static inline uint32_t
load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void
store_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t
load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void
store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---------------------------------------------------------------------------------------
 * MD5 (RFC 1321). The step macros work on scalars and on vectors.
 */

static const uint32_t MD5_IV[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};

/* floor(abs(sin(i + 1)) * 2^32) */
static const uint32_t MD5_K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

/* The four auxiliary functions, in forms with fewer operations than the RFC's. */
#define MD5_F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MD5_G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define MD5_H(x, y, z) ((x) ^ (y) ^ (z))
#define MD5_I(x, y, z) ((y) ^ ((x) | ~(z)))

#define MD5_STEP(f, a, b, c, d, x, k, s) \
    ((a) += f(b, c, d) + (x) + (k), (a) = (b) + ROTL32(a, s))

/* Four steps of a round: message words x[i0..i3], constants MD5_K[k..k+3], shifts s0..s3. */
#define MD5_4_STEPS(f, x, k, i0, i1, i2, i3, s0, s1, s2, s3) \
    MD5_STEP(f, a, b, c, d, (x)[i0], MD5_K[(k) + 0], s0);   \
    MD5_STEP(f, d, a, b, c, (x)[i1], MD5_K[(k) + 1], s1);   \
    MD5_STEP(f, c, d, a, b, (x)[i2], MD5_K[(k) + 2], s2);   \
    MD5_STEP(f, b, c, d, a, (x)[i3], MD5_K[(k) + 3], s3)

/* The 64 steps of one block, on working variables a, b, c, d and message words x[16]. */
#define MD5_64_STEPS(x)                                      \
    MD5_4_STEPS(MD5_F, x, 0, 0, 1, 2, 3, 7, 12, 17, 22);     \
    MD5_4_STEPS(MD5_F, x, 4, 4, 5, 6, 7, 7, 12, 17, 22);     \
    MD5_4_STEPS(MD5_F, x, 8, 8, 9, 10, 11, 7, 12, 17, 22);   \
    MD5_4_STEPS(MD5_F, x, 12, 12, 13, 14, 15, 7, 12, 17, 22); \
    MD5_4_STEPS(MD5_G, x, 16, 1, 6, 11, 0, 5, 9, 14, 20);    \
    MD5_4_STEPS(MD5_G, x, 20, 5, 10, 15, 4, 5, 9, 14, 20);   \
    MD5_4_STEPS(MD5_G, x, 24, 9, 14, 3, 8, 5, 9, 14, 20);    \
    MD5_4_STEPS(MD5_G, x, 28, 13, 2, 7, 12, 5, 9, 14, 20);   \
    MD5_4_STEPS(MD5_H, x, 32, 5, 8, 11, 14, 4, 11, 16, 23);  \
    MD5_4_STEPS(MD5_H, x, 36, 1, 4, 7, 10, 4, 11, 16, 23);   \
    MD5_4_STEPS(MD5_H, x, 40, 13, 0, 3, 6, 4, 11, 16, 23);   \
    MD5_4_STEPS(MD5_H, x, 44, 9, 12, 15, 2, 4, 11, 16, 23);  \
    MD5_4_STEPS(MD5_I, x, 48, 0, 7, 14, 5, 6, 10, 15, 21);   \
    MD5_4_STEPS(MD5_I, x, 52, 12, 3, 10, 1, 6, 10, 15, 21);  \
    MD5_4_STEPS(MD5_I, x, 56, 8, 15, 6, 13, 6, 10, 15, 21);  \
    MD5_4_STEPS(MD5_I, x, 60, 4, 11, 2, 9, 6, 10, 15, 21)

/* The scalar MD5 and SHA-256 share their 64-byte block buffering and padding: only the
 * compression function, the state size and the byte order of the length differ. */
typedef struct {
    uint32_t h[8]; /* MD5 uses the first 4 words */
    uint64_t length; /* bytes hashed so far */
    uint8_t block[64];
    size_t used; /* bytes waiting in block */
} md_ctx;

typedef void (*compress_fn)(uint32_t *h, const uint8_t block[64]);

static void
md_update(md_ctx *ctx, compress_fn compress, const uint8_t *data, size_t len)
{
    ctx->length += len;
    if (ctx->used > 0) {
        size_t take = 64 - ctx->used < len ? 64 - ctx->used : len;
        memcpy(ctx->block + ctx->used, data, take);
        ctx->used += take;
        data += take;
        len -= take;
        if (ctx->used < 64)
            return;
        compress(ctx->h, ctx->block);
        ctx->used = 0;
    }
    for (; len >= 64; data += 64, len -= 64)
        compress(ctx->h, data);
    if (len > 0)
        memcpy(ctx->block, data, len);
    ctx->used = len;
}

/* 0x80, zeros, and the bit length in 8 bytes, little- or big-endian. */
static void
md_pad(md_ctx *ctx, compress_fn compress, int big_endian_length)
{
    static const uint8_t padding[64] = {0x80};
    uint64_t bits = ctx->length * 8;
    uint8_t length[8];
    for (int i = 0; i < 8; i++)
        length[i] = (uint8_t)(bits >> (big_endian_length ? 56 - 8 * i : 8 * i));
    md_update(ctx, compress, padding, (ctx->used < 56 ? 56 : 120) - ctx->used);
    md_update(ctx, compress, length, 8);
}

typedef md_ctx md5_ctx;

static void
md5_compress(uint32_t *h, const uint8_t block[64])
{
    uint32_t x[16];
    for (int i = 0; i < 16; i++)
        x[i] = load_le32(block + 4 * i);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    MD5_64_STEPS(x);
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

static void
md5_init(md5_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    memcpy(ctx->h, MD5_IV, sizeof MD5_IV);
}

static void
md5_update(md5_ctx *ctx, const uint8_t *data, size_t len)
{
    md_update(ctx, md5_compress, data, len);
}

static void
md5_final(md5_ctx *ctx, uint8_t out[16])
{
    md_pad(ctx, md5_compress, 0);
    for (int i = 0; i < 4; i++)
        store_le32(out + 4 * i, ctx->h[i]);
}

/* ---------------------------------------------------------------------------------------
 * SHA-256 (FIPS 180-4). The round macros work on scalars and on vectors.
 */

static const uint32_t SHA256_IV[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* The first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define SHA256_CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define SHA256_MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))
#define SHA256_BSIG0(x) (ROTR32(x, 2) ^ ROTR32(x, 13) ^ ROTR32(x, 22))
#define SHA256_BSIG1(x) (ROTR32(x, 6) ^ ROTR32(x, 11) ^ ROTR32(x, 25))
#define SHA256_SSIG0(x) (ROTR32(x, 7) ^ ROTR32(x, 18) ^ ((x) >> 3))
#define SHA256_SSIG1(x) (ROTR32(x, 17) ^ ROTR32(x, 19) ^ ((x) >> 10))

/* Message schedule word i >= 16 of w. */
#define SHA256_SCHEDULE(w, i) \
    (SHA256_SSIG1((w)[(i) - 2]) + (w)[(i) - 7] + SHA256_SSIG0((w)[(i) - 15]) + (w)[(i) - 16])

/* One round, with kw = K[t] + W[t]. Rather than shifting eight variables, the caller
   rotates their roles: afterwards h holds the new a and d the new e. */
#define SHA256_ROUND(a, b, c, d, e, f, g, h, kw)        \
    ((h) += SHA256_BSIG1(e) + SHA256_CH(e, f, g) + (kw), \
     (d) += (h),                                        \
     (h) += SHA256_BSIG0(a) + SHA256_MAJ(a, b, c))

/* Rounds i..i+7 on working variables a..h with schedule w. */
#define SHA256_8_ROUNDS(w, i)                                                 \
    SHA256_ROUND(a, b, c, d, e, f, g, h, SHA256_K[(i) + 0] + (w)[(i) + 0]); \
    SHA256_ROUND(h, a, b, c, d, e, f, g, SHA256_K[(i) + 1] + (w)[(i) + 1]); \
    SHA256_ROUND(g, h, a, b, c, d, e, f, SHA256_K[(i) + 2] + (w)[(i) + 2]); \
    SHA256_ROUND(f, g, h, a, b, c, d, e, SHA256_K[(i) + 3] + (w)[(i) + 3]); \
    SHA256_ROUND(e, f, g, h, a, b, c, d, SHA256_K[(i) + 4] + (w)[(i) + 4]); \
    SHA256_ROUND(d, e, f, g, h, a, b, c, SHA256_K[(i) + 5] + (w)[(i) + 5]); \
    SHA256_ROUND(c, d, e, f, g, h, a, b, SHA256_K[(i) + 6] + (w)[(i) + 6]); \
    SHA256_ROUND(b, c, d, e, f, g, h, a, SHA256_K[(i) + 7] + (w)[(i) + 7])

typedef md_ctx sha256_ctx;

static void
sha256_compress(uint32_t *state, const uint8_t block[64])
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = load_be32(block + 4 * i);
    for (int i = 16; i < 64; i++)
        w[i] = SHA256_SCHEDULE(w, i);
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 64; i += 8) {
        SHA256_8_ROUNDS(w, i);
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

static void
sha256_init(sha256_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    memcpy(ctx->h, SHA256_IV, sizeof SHA256_IV);
}

static void
sha256_update(sha256_ctx *ctx, const uint8_t *data, size_t len)
{
    md_update(ctx, sha256_compress, data, len);
}

static void
sha256_final(sha256_ctx *ctx, uint8_t out[32])
{
    md_pad(ctx, sha256_compress, 1);
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, ctx->h[i]);
}

/* ---------------------------------------------------------------------------------------
 * Lane kernels, one row per lane. Their buffers are word-major: word w of lane l is
 * words[w * lanes + l], for the kernel's number of lanes (rows per pass).
 *
 * md5_rehash: replaces each lane's 16-byte digest (4 little-endian words) by the MD5 of
 * itself, count times. The block is always the digest, 0x80, zeros and the bit length 128.
 *
 * hmac_sha256_iterate: words holds each lane's U1 (8 big-endian words) on entry and
 * U1 ^ U2 ^ ... ^ U(count+1) on return, where U(j+1) = HMAC(password, U(j)) is computed from
 * the inner and outer states after the ipad/opad blocks (the same for every lane). Both
 * compressions hash one block of the same shape: 32 bytes, 0x80, zeros and the bit length
 * (64 + 32) * 8.
 *
 * The vector width is a parameter: a pass may span several hardware registers, which gives
 * the CPU independent chains to overlap (each lane's chain is strictly sequential).
 * sha_unroll is FULL to unroll the SHA-256 loops completely (a gain only with 32 vector
 * registers) or NONE.
 */

#if defined(__clang__)
#define KDF_UNROLL_FULL _Pragma("unroll")
#else
#define KDF_UNROLL_FULL _Pragma("GCC unroll 64")
#endif
#define KDF_UNROLL_NONE

#define DEFINE_LANE_KERNELS(isa, target, md5_lanes, sha_lanes, sha_unroll)                  \
                                                                                            \
    enum { isa##_md5_lanes = (md5_lanes), isa##_sha_lanes = (sha_lanes) };                  \
                                                                                            \
    target static void md5_rehash_##isa(uint32_t *digests, long count)                      \
    {                                                                                       \
        typedef uint32_t vec __attribute__((vector_size(4 * (md5_lanes))));               \
        vec x[16], a, b, c, d;                                                              \
        for (int i = 0; i < 4; i++)                                                         \
            memcpy(&x[i], digests + i * (md5_lanes), sizeof(vec));                          \
        for (int i = 4; i < 16; i++)                                                        \
            x[i] = SPLAT(vec, 0);                                                           \
        x[4] = SPLAT(vec, 0x80);                                                            \
        x[14] = SPLAT(vec, 16 * 8);                                                         \
        for (long r = 0; r < count; r++) {                                                  \
            a = SPLAT(vec, MD5_IV[0]);                                                      \
            b = SPLAT(vec, MD5_IV[1]);                                                      \
            c = SPLAT(vec, MD5_IV[2]);                                                      \
            d = SPLAT(vec, MD5_IV[3]);                                                      \
            MD5_64_STEPS(x);                                                                \
            x[0] = a + MD5_IV[0];                                                           \
            x[1] = b + MD5_IV[1];                                                           \
            x[2] = c + MD5_IV[2];                                                           \
            x[3] = d + MD5_IV[3];                                                           \
        }                                                                                   \
        for (int i = 0; i < 4; i++)                                                         \
            memcpy(digests + i * (md5_lanes), &x[i], sizeof(vec));                          \
    }                                                                                       \
                                                                                            \
    target static void hmac_sha256_iterate_##isa(uint32_t *words, const uint32_t inner[8], \
                                                 const uint32_t outer[8], long count)       \
    {                                                                                       \
        typedef uint32_t vec __attribute__((vector_size(4 * (sha_lanes))));               \
        vec u[8], sum[8], w[64], a, b, c, d, e, f, g, h;                                    \
        for (int i = 0; i < 8; i++) {                                                       \
            memcpy(&u[i], words + i * (sha_lanes), sizeof(vec));                            \
            sum[i] = u[i];                                                                  \
        }                                                                                   \
        for (long r = 0; r < count; r++) {                                                  \
            KDF_UNROLL_##sha_unroll for (int pass = 0; pass < 2; pass++) {                  \
                const uint32_t *state = pass == 0 ? inner : outer;                          \
                for (int i = 0; i < 8; i++)                                                 \
                    w[i] = u[i];                                                            \
                w[8] = SPLAT(vec, 0x80000000);                                              \
                for (int i = 9; i < 15; i++)                                                \
                    w[i] = SPLAT(vec, 0);                                                   \
                w[15] = SPLAT(vec, (64 + 32) * 8);                                          \
                KDF_UNROLL_##sha_unroll for (int i = 16; i < 64; i++)                       \
                    w[i] = SHA256_SCHEDULE(w, i);                                           \
                a = SPLAT(vec, state[0]);                                                   \
                b = SPLAT(vec, state[1]);                                                   \
                c = SPLAT(vec, state[2]);                                                   \
                d = SPLAT(vec, state[3]);                                                   \
                e = SPLAT(vec, state[4]);                                                   \
                f = SPLAT(vec, state[5]);                                                   \
                g = SPLAT(vec, state[6]);                                                   \
                h = SPLAT(vec, state[7]);                                                   \
                KDF_UNROLL_##sha_unroll for (int i = 0; i < 64; i += 8) {                   \
                    SHA256_8_ROUNDS(w, i);                                                  \
                }                                                                           \
                u[0] = a + state[0];                                                        \
                u[1] = b + state[1];                                                        \
                u[2] = c + state[2];                                                        \
                u[3] = d + state[3];                                                        \
                u[4] = e + state[4];                                                        \
                u[5] = f + state[5];                                                        \
                u[6] = g + state[6];                                                        \
                u[7] = h + state[7];                                                        \
            }                                                                               \
            for (int i = 0; i < 8; i++)                                                     \
                sum[i] ^= u[i];                                                             \
        }                                                                                   \
        for (int i = 0; i < 8; i++)                                                         \
            memcpy(words + i * (sha_lanes), &sum[i], sizeof(vec));                          \
    }

/* Rows per pass and unrolling: the fastest of each build, measured on an AVX-512 machine.
   MD5 keeps few values live, so several registers per pass hide its latency; the SHA-256
   schedule fills the register file sooner. The generic build gets the compiler's baseline
   instruction set (SSE2 on x86-64, NEON on aarch64). */
#ifdef KDF_X86
DEFINE_LANE_KERNELS(avx512f, __attribute__((target("avx512f,avx512vl"))), 64, 32, FULL)
DEFINE_LANE_KERNELS(avx2, __attribute__((target("avx2"))), 32, 8, NONE)
#endif
DEFINE_LANE_KERNELS(generic, , 16, 4, NONE)

typedef void md5_kernel(uint32_t *digests, long count);
typedef void hmac_kernel(uint32_t *words, const uint32_t inner[8], const uint32_t outer[8],
                         long count);

typedef struct {
    const char *name;
    int register_lanes; /* 32-bit lanes in one vector register: the module's LANES */
    int md5_lanes;      /* rows per md5_rehash pass */
    int sha_lanes;      /* rows per hmac_sha256_iterate pass */
    md5_kernel *md5_rehash;
    hmac_kernel *hmac_sha256_iterate;
} kernel_set;

#define KERNEL_SET(isa, register_lanes)                                               \
    {#isa, register_lanes, isa##_md5_lanes, isa##_sha_lanes, md5_rehash_##isa,        \
     hmac_sha256_iterate_##isa}

/* In order of preference. */
static const kernel_set KERNELS[] = {
#ifdef KDF_X86
    KERNEL_SET(avx512f, 16),
    KERNEL_SET(avx2, 8),
#endif
    /* SSE2 on x86-64, NEON on aarch64; plain scalar code where there is no SIMD. */
    KERNEL_SET(generic, 4),
};
#define N_KERNELS (sizeof KERNELS / sizeof KERNELS[0])

static int
kernel_usable(const kernel_set *k)
{
    if (k->md5_lanes > KDF_MAX_LANES || k->sha_lanes > KDF_MAX_LANES)
        return 0;
#ifdef KDF_X86
    if (strcmp(k->name, "avx512f") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    if (strcmp(k->name, "avx2") == 0)
        return __builtin_cpu_supports("avx2");
#endif
    return 1;
}

/* ---------------------------------------------------------------------------------------
 * Row drivers: scalar first hashes, lane kernels, results back to bytes. No Python calls:
 * they run with the GIL released.
 */

static void
evp_md5_rows(const kernel_set *k, const uint8_t *password, size_t password_len,
             const uint8_t *salts, size_t count, long rounds, uint8_t *out)
{
    const size_t lanes = (size_t)k->md5_lanes;
    uint32_t words[4 * KDF_MAX_LANES];
    uint8_t digest[16];
    md5_ctx password_prefix, ctx;

    md5_init(&password_prefix);
    md5_update(&password_prefix, password, password_len);

    for (size_t first = 0; first < count; first += lanes) {
        size_t rows = count - first < lanes ? count - first : lanes;

        /* key = D1 = MD5^rounds(password || salt) */
        memset(words, 0, sizeof words);
        for (size_t lane = 0; lane < rows; lane++) {
            ctx = password_prefix;
            md5_update(&ctx, salts + 8 * (first + lane), 8);
            md5_final(&ctx, digest);
            for (size_t i = 0; i < 4; i++)
                words[i * lanes + lane] = load_le32(digest + 4 * i);
        }
        k->md5_rehash(words, rounds - 1);
        for (size_t lane = 0; lane < rows; lane++)
            for (size_t i = 0; i < 4; i++)
                store_le32(out + 32 * (first + lane) + 4 * i, words[i * lanes + lane]);

        /* iv = D2 = MD5^rounds(D1 || password || salt) */
        memset(words, 0, sizeof words);
        for (size_t lane = 0; lane < rows; lane++) {
            md5_init(&ctx);
            md5_update(&ctx, out + 32 * (first + lane), 16);
            md5_update(&ctx, password, password_len);
            md5_update(&ctx, salts + 8 * (first + lane), 8);
            md5_final(&ctx, digest);
            for (size_t i = 0; i < 4; i++)
                words[i * lanes + lane] = load_le32(digest + 4 * i);
        }
        k->md5_rehash(words, rounds - 1);
        for (size_t lane = 0; lane < rows; lane++)
            for (size_t i = 0; i < 4; i++)
                store_le32(out + 32 * (first + lane) + 16 + 4 * i, words[i * lanes + lane]);
    }
    secure_zero(words, sizeof words);
    secure_zero(digest, sizeof digest);
    secure_zero(&password_prefix, sizeof password_prefix);
    secure_zero(&ctx, sizeof ctx);
}

static void
pbkdf2_sha256_rows(const kernel_set *k, const uint8_t *password, size_t password_len,
                   const uint8_t *salts, const size_t *salt_offsets, size_t count,
                   long iterations, size_t length, uint8_t *out)
{
    static const uint8_t block_index_1[4] = {0, 0, 0, 1};
    const size_t lanes = (size_t)k->sha_lanes;
    uint32_t words[8 * KDF_MAX_LANES];
    uint8_t key[64] = {0}, pad[64], digest[32];
    sha256_ctx inner, outer, ctx;

    /* HMAC key: the password, or its hash when longer than a block, zero-padded. */
    if (password_len > 64) {
        sha256_init(&ctx);
        sha256_update(&ctx, password, password_len);
        sha256_final(&ctx, key);
    }
    else {
        memcpy(key, password, password_len);
    }
    for (int i = 0; i < 64; i++)
        pad[i] = key[i] ^ 0x36;
    sha256_init(&inner);
    sha256_update(&inner, pad, 64);
    for (int i = 0; i < 64; i++)
        pad[i] = key[i] ^ 0x5c;
    sha256_init(&outer);
    sha256_update(&outer, pad, 64);

    for (size_t first = 0; first < count; first += lanes) {
        size_t rows = count - first < lanes ? count - first : lanes;

        /* U1 = HMAC(password, salt || INT(1)) */
        memset(words, 0, sizeof words);
        for (size_t lane = 0; lane < rows; lane++) {
            size_t row = first + lane;
            ctx = inner;
            sha256_update(&ctx, salts + salt_offsets[row],
                          salt_offsets[row + 1] - salt_offsets[row]);
            sha256_update(&ctx, block_index_1, 4);
            sha256_final(&ctx, digest);
            ctx = outer;
            sha256_update(&ctx, digest, 32);
            sha256_final(&ctx, digest);
            for (size_t i = 0; i < 8; i++)
                words[i * lanes + lane] = load_be32(digest + 4 * i);
        }
        /* T = U1 ^ U2 ^ ... ^ U(iterations) */
        k->hmac_sha256_iterate(words, inner.h, outer.h, iterations - 1);
        for (size_t lane = 0; lane < rows; lane++) {
            for (size_t i = 0; i < 8; i++)
                store_be32(digest + 4 * i, words[i * lanes + lane]);
            memcpy(out + length * (first + lane), digest, length);
        }
    }
    secure_zero(words, sizeof words);
    secure_zero(digest, sizeof digest);
    secure_zero(key, sizeof key);
    secure_zero(pad, sizeof pad);
    secure_zero(&inner, sizeof inner);
    secure_zero(&outer, sizeof outer);
    secure_zero(&ctx, sizeof ctx);
}

/* ---------------------------------------------------------------------------------------
 * AES-128-CBC (FIPS-197, SP 800-38A) with AES-NI, for the values themselves: one call per
 * row, so what counts is the fixed cost of a call rather than throughput. Raw CBC only;
 * PKCS#7 padding stays in crypto.py. x86 only: elsewhere HAS_AES is False and crypto.py
 * uses the cryptography package.
 *
 * aesenc/aesdec do one full round (ShiftRows, SubBytes, MixColumns, AddRoundKey, or their
 * inverses), aesenclast/aesdeclast the last round without (Inv)MixColumns.
 */

#ifdef KDF_X86
#include <wmmintrin.h>

#define AES_TARGET __attribute__((target("aes,sse2")))
#define AES128_ROUNDS 10

/* Decryption interleaves this many independent blocks (CBC decryption is parallel; the
   aesdec latency is several cycles, and recent CPUs issue one or two per cycle). */
#define AES_DECRYPT_WAYS 8

/* Round key i of the expansion (FIPS-197 5.2) from round key i - 1 and the result of
   aeskeygenassist on it. Word 3 of that result is SubWord(RotWord(w3)) ^ Rcon; each new
   word is it xored with all previous-key words up to the same position, i.e. a prefix XOR
   over the four words, done here in two shifted xors. */
AES_TARGET static inline __m128i
aes128_next_round_key(__m128i previous, __m128i assist)
{
    __m128i t = _mm_shuffle_epi32(assist, 0xff); /* word 3 in every word */
    previous = _mm_xor_si128(previous, _mm_slli_si128(previous, 4));
    previous = _mm_xor_si128(previous, _mm_slli_si128(previous, 8));
    return _mm_xor_si128(previous, t);
}

/* The round constant is an instruction immediate, hence a macro. */
#define AES128_EXPAND(rk, i, rcon)                \
    ((rk)[i] = aes128_next_round_key((rk)[(i) - 1], \
                                     _mm_aeskeygenassist_si128((rk)[(i) - 1], rcon)))

AES_TARGET static void
aes128_encrypt_schedule(const uint8_t key[16], __m128i rk[AES128_ROUNDS + 1])
{
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    AES128_EXPAND(rk, 1, 0x01);
    AES128_EXPAND(rk, 2, 0x02);
    AES128_EXPAND(rk, 3, 0x04);
    AES128_EXPAND(rk, 4, 0x08);
    AES128_EXPAND(rk, 5, 0x10);
    AES128_EXPAND(rk, 6, 0x20);
    AES128_EXPAND(rk, 7, 0x40);
    AES128_EXPAND(rk, 8, 0x80);
    AES128_EXPAND(rk, 9, 0x1b);
    AES128_EXPAND(rk, 10, 0x36);
}

/* Round keys of the equivalent inverse cipher (FIPS-197 5.3.5), the form aesdec expects:
   the encryption keys in reverse order, InvMixColumns applied to all but the first and
   last. */
AES_TARGET static void
aes128_decrypt_schedule(const uint8_t key[16], __m128i dk[AES128_ROUNDS + 1])
{
    __m128i ek[AES128_ROUNDS + 1];
    aes128_encrypt_schedule(key, ek);
    dk[0] = ek[AES128_ROUNDS];
    for (int r = 1; r < AES128_ROUNDS; r++)
        dk[r] = _mm_aesimc_si128(ek[AES128_ROUNDS - r]);
    dk[AES128_ROUNDS] = ek[0];
    secure_zero(ek, sizeof ek);
}

/* C_i = E(P_i ^ C_(i-1)), C_0 = IV: strictly sequential. */
AES_TARGET static void
aes128_cbc_encrypt_blocks(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in,
                          uint8_t *out, size_t blocks)
{
    __m128i rk[AES128_ROUNDS + 1];
    aes128_encrypt_schedule(key, rk);
    __m128i chain = _mm_loadu_si128((const __m128i *)iv);
    for (size_t b = 0; b < blocks; b++) {
        /* the plaintext's whitening does not wait for the previous block */
        __m128i x = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(in + 16 * b)), rk[0]);
        x = _mm_xor_si128(x, chain);
        for (int r = 1; r < AES128_ROUNDS; r++)
            x = _mm_aesenc_si128(x, rk[r]);
        chain = _mm_aesenclast_si128(x, rk[AES128_ROUNDS]);
        _mm_storeu_si128((__m128i *)(out + 16 * b), chain);
    }
    secure_zero(rk, sizeof rk);
}

/* P_i = D(C_i) ^ C_(i-1), C_0 = IV: the block decryptions are independent, so they run
   AES_DECRYPT_WAYS at a time. out must not overlap in. */
AES_TARGET static void
aes128_cbc_decrypt_blocks(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in,
                          uint8_t *out, size_t blocks)
{
    __m128i dk[AES128_ROUNDS + 1];
    aes128_decrypt_schedule(key, dk);
    __m128i previous = _mm_loadu_si128((const __m128i *)iv);
    size_t b = 0;
    for (; b + AES_DECRYPT_WAYS <= blocks; b += AES_DECRYPT_WAYS) {
        __m128i c[AES_DECRYPT_WAYS], x[AES_DECRYPT_WAYS];
        KDF_UNROLL_FULL for (int j = 0; j < AES_DECRYPT_WAYS; j++) {
            c[j] = _mm_loadu_si128((const __m128i *)(in + 16 * (b + j)));
            x[j] = _mm_xor_si128(c[j], dk[0]);
        }
        KDF_UNROLL_FULL for (int r = 1; r < AES128_ROUNDS; r++) {
            KDF_UNROLL_FULL for (int j = 0; j < AES_DECRYPT_WAYS; j++)
                x[j] = _mm_aesdec_si128(x[j], dk[r]);
        }
        KDF_UNROLL_FULL for (int j = 0; j < AES_DECRYPT_WAYS; j++) {
            x[j] = _mm_aesdeclast_si128(x[j], dk[AES128_ROUNDS]);
            x[j] = _mm_xor_si128(x[j], j == 0 ? previous : c[j - 1]);
            _mm_storeu_si128((__m128i *)(out + 16 * (b + j)), x[j]);
        }
        previous = c[AES_DECRYPT_WAYS - 1];
    }
    for (; b < blocks; b++) {
        __m128i c = _mm_loadu_si128((const __m128i *)(in + 16 * b));
        __m128i x = _mm_xor_si128(c, dk[0]);
        for (int r = 1; r < AES128_ROUNDS; r++)
            x = _mm_aesdec_si128(x, dk[r]);
        x = _mm_xor_si128(_mm_aesdeclast_si128(x, dk[AES128_ROUNDS]), previous);
        _mm_storeu_si128((__m128i *)(out + 16 * b), x);
        previous = c;
    }
    secure_zero(dk, sizeof dk);
}

static int
aes_usable(void)
{
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse2");
}
#else
static int
aes_usable(void)
{
    return 0;
}
#endif /* KDF_X86 */

/* ---------------------------------------------------------------------------------------
 * Python interface.
 */

typedef struct {
    const kernel_set *chosen;
    const kernel_set *usable[N_KERNELS]; /* NULL-terminated when fewer */
    int has_aes;                         /* AES-NI usable: the module's HAS_AES */
} module_state;

/* The kernel set named by the isa= keyword, or the one chosen at import. */
static const kernel_set *
select_kernels(PyObject *module, const char *name)
{
    module_state *st = PyModule_GetState(module);
    if (name == NULL)
        return st->chosen;
    for (size_t i = 0; i < N_KERNELS && st->usable[i] != NULL; i++)
        if (strcmp(st->usable[i]->name, name) == 0)
            return st->usable[i];
    PyErr_Format(PyExc_ValueError, "isa '%.100s' is not available on this CPU", name);
    return NULL;
}

/* Salts copied out of their Python objects, so that the work runs without the GIL. */
typedef struct {
    size_t count;
    uint8_t *data;
    size_t *offsets; /* count + 1 entries: salt i is data[offsets[i]:offsets[i + 1]] */
} salt_list;

static void
salt_list_free(salt_list *salts)
{
    PyMem_Free(salts->data);
    PyMem_Free(salts->offsets);
    salts->data = NULL;
    salts->offsets = NULL;
}

/* Fills salts from a sequence of bytes-like objects; required_len < 0 means any length. */
static int
salt_list_collect(PyObject *arg, Py_ssize_t required_len, salt_list *salts)
{
    if (PyBytes_Check(arg) || PyByteArray_Check(arg) || PyMemoryView_Check(arg) ||
        PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "salts must be a sequence of bytes objects, not a single %.100s",
                     Py_TYPE(arg)->tp_name);
        return -1;
    }
    /* A tuple of our own: the caller's list cannot change under us. */
    PyObject *items = PySequence_Tuple(arg);
    if (items == NULL)
        return -1;
    size_t count = (size_t)PyTuple_GET_SIZE(items);
    size_t capacity = count < ((size_t)PY_SSIZE_T_MAX - 16) / 16 ? 16 * count + 16
                                                                : (size_t)PY_SSIZE_T_MAX;
    size_t used = 0;
    salts->count = count;
    salts->data = PyMem_Malloc(capacity);
    salts->offsets = PyMem_New(size_t, count + 1);
    if (salts->data == NULL || salts->offsets == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    for (size_t i = 0; i < count; i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(items, i), &view, PyBUF_SIMPLE) < 0)
            goto error;
        if (required_len >= 0 && view.len != required_len) {
            PyErr_Format(PyExc_ValueError, "salts[%zu] must be %zd bytes, not %zd", i,
                         required_len, view.len);
            PyBuffer_Release(&view);
            goto error;
        }
        if ((size_t)view.len > capacity - used) {
            size_t wanted;
            uint8_t *grown = NULL;
            if (!__builtin_mul_overflow(capacity, (size_t)2, &wanted) &&
                !__builtin_add_overflow(wanted, (size_t)view.len, &wanted))
                grown = PyMem_Realloc(salts->data, wanted);
            if (grown == NULL) {
                PyBuffer_Release(&view);
                PyErr_NoMemory();
                goto error;
            }
            salts->data = grown;
            capacity = wanted;
        }
        salts->offsets[i] = used;
        if (view.len > 0)
            memcpy(salts->data + used, view.buf, (size_t)view.len);
        used += (size_t)view.len;
        PyBuffer_Release(&view);
    }
    salts->offsets[count] = used;
    Py_DECREF(items);
    return 0;

error:
    Py_DECREF(items);
    salt_list_free(salts);
    return -1;
}

PyDoc_STRVAR(evp_md5_doc,
"evp_md5(password, salts, rounds, *, isa=None) -> bytes\n"
"\n"
"OpenSSL EVP_BytesToKey(MD5, salt, password, rounds) for each 8-byte salt: a 16-byte key\n"
"D1 = MD5^rounds(password || salt) and a 16-byte IV D2 = MD5^rounds(D1 || password || salt).\n"
"Returns key || iv for each salt, in order (32 bytes per salt).\n"
"isa= forces one of _ISAS (for tests and benchmarks).");

static PyObject *
kdf_evp_md5(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"password", "salts", "rounds", "isa", NULL};
    Py_buffer password;
    PyObject *salts_arg, *result = NULL;
    Py_ssize_t rounds;
    const char *isa = NULL;
    salt_list salts = {0};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*On|$z:evp_md5", kwlist, &password,
                                     &salts_arg, &rounds, &isa))
        return NULL;
    const kernel_set *k = select_kernels(module, isa);
    if (k == NULL)
        goto done;
    if (rounds < 1) {
        PyErr_SetString(PyExc_ValueError, "rounds must be at least 1");
        goto done;
    }
    if (rounds > INT_MAX) {  /* OpenSSL and Ruby take an int: no real row has more */
        PyErr_SetString(PyExc_OverflowError, "rounds must fit in a C int");
        goto done;
    }
    if (salt_list_collect(salts_arg, 8, &salts) < 0)
        goto done;
    if (salts.count > (size_t)PY_SSIZE_T_MAX / 32) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(32 * salts.count));
    if (result == NULL)
        goto done;
    Py_BEGIN_ALLOW_THREADS
    evp_md5_rows(k, password.buf, (size_t)password.len, salts.data, salts.count, (long)rounds,
                 (uint8_t *)PyBytes_AS_STRING(result));
    Py_END_ALLOW_THREADS

done:
    salt_list_free(&salts);
    PyBuffer_Release(&password);
    return result;
}

PyDoc_STRVAR(pbkdf2_sha256_doc,
"pbkdf2_sha256(password, salts, iterations, length=16, *, isa=None) -> bytes\n"
"\n"
"PBKDF2-HMAC-SHA256(password, salt, iterations, length) for each salt (any length), as\n"
"hashlib.pbkdf2_hmac computes it; length is at most 32. Returns the keys concatenated\n"
"(length bytes per salt), in order. isa= forces one of _ISAS (for tests and benchmarks).");

static PyObject *
kdf_pbkdf2_sha256(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"password", "salts", "iterations", "length", "isa", NULL};
    Py_buffer password;
    PyObject *salts_arg, *result = NULL;
    Py_ssize_t iterations, length = 16;
    const char *isa = NULL;
    salt_list salts = {0};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*On|n$z:pbkdf2_sha256", kwlist, &password,
                                     &salts_arg, &iterations, &length, &isa))
        return NULL;
    const kernel_set *k = select_kernels(module, isa);
    if (k == NULL)
        goto done;
    if (iterations < 1) {
        PyErr_SetString(PyExc_ValueError, "iterations must be at least 1");
        goto done;
    }
    if (iterations > INT_MAX) {  /* OpenSSL and Ruby take an int: no real row has more */
        PyErr_SetString(PyExc_OverflowError, "iterations must fit in a C int");
        goto done;
    }
    if (length < 1 || length > 32) {
        PyErr_SetString(PyExc_ValueError, "length must be between 1 and 32 (one SHA-256 block)");
        goto done;
    }
    if (salt_list_collect(salts_arg, -1, &salts) < 0)
        goto done;
    if (salts.count > (size_t)PY_SSIZE_T_MAX / 32) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)((size_t)length * salts.count));
    if (result == NULL)
        goto done;
    Py_BEGIN_ALLOW_THREADS
    pbkdf2_sha256_rows(k, password.buf, (size_t)password.len, salts.data, salts.offsets,
                       salts.count, (long)iterations, (size_t)length,
                       (uint8_t *)PyBytes_AS_STRING(result));
    Py_END_ALLOW_THREADS

done:
    salt_list_free(&salts);
    PyBuffer_Release(&password);
    return result;
}

/* AES arguments are short values: above this size the GIL is released during the work. */
#define AES_RELEASE_GIL_FROM (64 * 1024)

typedef void aes_cbc_blocks(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in,
                            uint8_t *out, size_t blocks);

#ifdef KDF_X86
#define AES_KERNEL(f) (f)
#else
#define AES_KERNEL(f) NULL
#endif

/* The shared body of aes128_cbc_decrypt/encrypt(key, iv, data): positional arguments only,
   through the fast call protocol (the argument parsing would otherwise cost more than the
   AES work on a short value). */
static PyObject *
aes128_cbc(PyObject *module, const char *name, aes_cbc_blocks *run, PyObject *const *args,
           Py_ssize_t nargs)
{
    static const char *const arg_names[3] = {"key", "iv", "data"};
    module_state *st = PyModule_GetState(module);
    Py_buffer views[3];
    int held = 0;
    PyObject *result = NULL;

    if (!st->has_aes || run == NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s: AES-NI is not available on this CPU (HAS_AES is False)", name);
        return NULL;
    }
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly 3 arguments (%zd given)", name, nargs);
        return NULL;
    }
    for (; held < 3; held++) {
        if (!PyObject_CheckBuffer(args[held])) {
            PyErr_Format(PyExc_TypeError,
                         "%s() argument '%s' must be a bytes-like object, not %.100s", name,
                         arg_names[held], Py_TYPE(args[held])->tp_name);
            goto done;
        }
        if (PyObject_GetBuffer(args[held], &views[held], PyBUF_SIMPLE) < 0)
            goto done;
    }
    if (views[0].len != 16 || views[1].len != 16) {
        int which = views[0].len != 16 ? 0 : 1;
        PyErr_Format(PyExc_ValueError, "%s: %s must be 16 bytes, not %zd", name,
                     arg_names[which], views[which].len);
        goto done;
    }
    if (views[2].len == 0 || views[2].len % 16 != 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: data must be a positive multiple of 16 bytes (whole AES blocks), not %zd",
                     name, views[2].len);
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, views[2].len);
    if (result == NULL)
        goto done;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    size_t blocks = (size_t)views[2].len / 16;
    if (views[2].len >= AES_RELEASE_GIL_FROM) {
        Py_BEGIN_ALLOW_THREADS
        run(views[0].buf, views[1].buf, views[2].buf, out, blocks);
        Py_END_ALLOW_THREADS
    }
    else {
        run(views[0].buf, views[1].buf, views[2].buf, out, blocks);
    }

done:
    while (held > 0)
        PyBuffer_Release(&views[--held]);
    return result;
}

PyDoc_STRVAR(aes128_cbc_decrypt_doc,
"aes128_cbc_decrypt(key, iv, data, /) -> bytes\n"
"\n"
"AES-128-CBC decryption with AES-NI, without padding handling: key and iv are 16 bytes,\n"
"data a positive multiple of 16 bytes (ValueError otherwise). RuntimeError when HAS_AES is\n"
"False.");

static PyObject *
kdf_aes128_cbc_decrypt(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return aes128_cbc(module, "aes128_cbc_decrypt", AES_KERNEL(aes128_cbc_decrypt_blocks), args,
                      nargs);
}

PyDoc_STRVAR(aes128_cbc_encrypt_doc,
"aes128_cbc_encrypt(key, iv, data, /) -> bytes\n"
"\n"
"AES-128-CBC encryption with AES-NI, without padding: key and iv are 16 bytes, data a\n"
"positive multiple of 16 bytes (ValueError otherwise). RuntimeError when HAS_AES is False.");

static PyObject *
kdf_aes128_cbc_encrypt(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return aes128_cbc(module, "aes128_cbc_encrypt", AES_KERNEL(aes128_cbc_encrypt_blocks), args,
                      nargs);
}

static PyMethodDef kdf_methods[] = {
    {"evp_md5", (PyCFunction)(void (*)(void))kdf_evp_md5, METH_VARARGS | METH_KEYWORDS,
     evp_md5_doc},
    {"pbkdf2_sha256", (PyCFunction)(void (*)(void))kdf_pbkdf2_sha256,
     METH_VARARGS | METH_KEYWORDS, pbkdf2_sha256_doc},
    {"aes128_cbc_decrypt", (PyCFunction)(void (*)(void))kdf_aes128_cbc_decrypt, METH_FASTCALL,
     aes128_cbc_decrypt_doc},
    {"aes128_cbc_encrypt", (PyCFunction)(void (*)(void))kdf_aes128_cbc_encrypt, METH_FASTCALL,
     aes128_cbc_encrypt_doc},
    {NULL, NULL, 0, NULL},
};

static int
kdf_exec(PyObject *module)
{
    module_state *st = PyModule_GetState(module);
    size_t n = 0;

#ifdef KDF_X86
    __builtin_cpu_init();
#endif
    memset(st->usable, 0, sizeof st->usable);
    for (size_t i = 0; i < N_KERNELS; i++)
        if (kernel_usable(&KERNELS[i]))
            st->usable[n++] = &KERNELS[i];
    st->chosen = st->usable[0]; /* "generic" is always usable */
    st->has_aes = aes_usable();

    PyObject *names = PyTuple_New((Py_ssize_t)n);
    if (names == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        PyObject *name = PyUnicode_FromString(st->usable[i]->name);
        if (name == NULL) {
            Py_DECREF(names);
            return -1;
        }
        PyTuple_SET_ITEM(names, (Py_ssize_t)i, name);
    }
    int failed = PyModule_AddObjectRef(module, "_ISAS", names) < 0;
    Py_DECREF(names);
    if (failed)
        return -1;
    PyObject *rows = Py_BuildValue("{s:i,s:i}", "evp_md5", st->chosen->md5_lanes,
                                   "pbkdf2_sha256", st->chosen->sha_lanes);
    if (rows == NULL)
        return -1;
    failed = PyModule_AddObjectRef(module, "_ROWS_PER_PASS", rows) < 0;
    Py_DECREF(rows);
    if (failed || PyModule_AddIntConstant(module, "LANES", st->chosen->register_lanes) < 0 ||
        PyModule_AddStringConstant(module, "ISA", st->chosen->name) < 0 ||
        PyModule_AddObjectRef(module, "HAS_AES", st->has_aes ? Py_True : Py_False) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot kdf_slots[] = {
    {Py_mod_exec, kdf_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

PyDoc_STRVAR(kdf_doc,
"Multi-buffer key derivation for Cloud Controller rows: many salts at once, one per SIMD lane;\n"
"and AES-128-CBC for their values.\n"
"\n"
"ISA is the instruction set chosen at import, LANES the 32-bit lanes of its vector registers.\n"
"A pass of a kernel may span several registers: _ROWS_PER_PASS gives the rows each function\n"
"derives together (batches are padded up to a multiple). _ISAS lists every instruction set\n"
"this CPU can run, best first; the isa= keyword of evp_md5 and pbkdf2_sha256 forces one.\n"
"\n"
"aes128_cbc_decrypt/aes128_cbc_encrypt do raw AES-128-CBC (no padding) with AES-NI for the\n"
"values themselves; HAS_AES tells whether this CPU has it (elsewhere they raise RuntimeError).");

static struct PyModuleDef kdf_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "steps.ccdb._kdf",
    .m_doc = kdf_doc,
    .m_size = sizeof(module_state),
    .m_methods = kdf_methods,
    .m_slots = kdf_slots,
};

PyMODINIT_FUNC
PyInit__kdf(void)
{
    return PyModuleDef_Init(&kdf_module);
}
