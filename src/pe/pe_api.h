// Position encodings: the absolute table the model adds to its input, and the kernels that act inside
// attention (one file each: rope.c, rel.c, cope.c, alibi.c). Each kernel owns its config keys, its
// options (a struct of its own per layer), its tables (declared into the model's parameters), its
// cache and work memory and its hooks. attention.c runs the same loop for every layer and calls the
// hooks of the kernels a layer has switched on (AttnPE.parts); adding an encoding means a new file
// with one PEKernel and a line in PE_REGISTRY (registry.c); README "Adding a position encoding".
//
// How attention.c drives the hooks, per (sequence b, head h), rows cut into blocks [i0, i1):
//   forward:  qk_forward (whole batch, before the heads: RoPE) → head_forward →
//             per block: S = Q·Kᵀ (columns < i1) → block_forward → per row: logits a[j] = s·S_ij,
//             row_logits adds the kernel's terms, mask, softmax → out = α'·V
//   backward: head_backward → per block: dα = G·Vᵀ → block_backward → per row: softmax backward gives
//             dA, dS = s·dA, row_backward adds the kernel's paths → dV, dQ, dK products →
//             block_backward_end → head_backward_end → qk_backward (RoPE: rotate dq, dk back) →
//             reduce (after all heads: sum the per-head partial parameter gradients in a fixed order).
// Every hook may be NULL. The hooks of one head run on one thread; everything they write is either
// private to the head (its slice of the cache, of dq/dk/dv, its partial gradient) or per-thread work.
#ifndef PE_API_H
#define PE_API_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "real.h"

enum { PE_MAX_KERNELS = 8 };  // registry entries at most (AttnPE.parts has a bit each)

// The position encodings acting inside one layer's attention, resolved from the config once
// (pe_layer_init, called by model_init): which registered kernels act, and each acting kernel's own
// options and tables (a struct private to its file, AttnPE.opts[its registry index]: the kernels
// reach theirs through PEHead.opts or pe_opts). Tables are parameters the model owns (declared by
// the kernels, pe_declare_*); their gradients are accumulated (+=).
typedef struct {
    unsigned parts;           // bit i: pe_kernels[i] acts in this layer (pe_bit("name") gives the bit)
    int own_keys;             // a kernel wants keys of its own (CoPE's sep_keys): the layer projects them
    const real *gate_keys;    // (B,T,C) those keys, or NULL (bound by the model for each batch shape)
    real *dgate_keys;
    int keep_positions;       // keep positions in the cache for inspection (CoPE's p; training does not)
    void *opts[PE_MAX_KERNELS];
} AttnPE;

// A parameter a kernel declares and its gradient; both NULL in the layout's counting pass, dw NULL
// when the model does not train.
typedef struct {
    real *w, *dw;
} PETensor;

// How kernels declare their parameters; the model's layout implements `add` (name: the tensor's
// name in checkpoints, prefixed "layers.<l>." for a layer's; init 'z' zeros, 'n' normal(0, scale),
// 'u' uniform(±scale); decay: weight decay applies).
typedef struct PEParams {
    PETensor (*add)(struct PEParams *pp, const char *name, long size, int decay, char init, double scale);
    int dh;            // head dimension
    int decay_tables;  // train.decay_embeddings: position tables decay like the embeddings
} PEParams;

// What the forward saves for the backward (and, on request, the CoPE positions for pictures); points
// into memory the model owns. A forward of the query rows r0..T-1 only (decoding, streaming
// evaluation) keeps R = T - r0 rows per head; training keeps all, R = T. Row i of head bh is row
// bh·R + (i - r0) (pe_cache_row).
typedef struct {
    real *probs;  // (B,H,R,T) attention probabilities before dropout; 0 at masked keys j <= i; entries
                  // j > i unspecified to readers. Attention writes and reads row i's columns below
                  // its row block's end only (at most i + rows); a training cache's CoPE may keep
                  // gates in the others (cope.c, keeps_gates)
    real *gates;  // (B,H,R,T) CoPE sigmoid gates σ (unmasked) when keep_positions, else NULL; entries
                  // j > i unspecified
    real *pos;    // (B,H,R,T) CoPE positions p before clamping when keep_positions, else NULL;
                  // entries j > i unspecified
    int *unclamped;  // (B,H,R) CoPE: each row's first key whose position is not at the clamp (keys
                     // before it take no gates in the backward), or NULL
    real *near_gates;  // (B,H,T,rows) CoPE, training cache: each row's gates of its `rows` newest keys
                       // for the backward (the older ones sit in probs' unused columns: cope.c), or NULL
    int rows;     // the block height the cache was bound for (attention's calls on it cut rows so)
    real *qrot;   // (B,T,C) rotated q (RoPE), or NULL
    real *krot;   // (B,T,C) rotated k (RoPE), or NULL
} AttnCache;

// One (sequence, head) as the kernels see it. Rows of the (T,dh) head views are `ld` apart.
typedef struct {
    const AttnPE *pe;
    const void *opts;           // the kernel's own options and tables (AttnPE.opts)
    AttnCache *cache;
    int T, C, dh;
    long bh;                    // b·H + h: this head's index in the (B,H,...) cache arrays
    int h, H;                   // the head and the number of heads
    real s;                     // 1/sqrt(dh)
    const real *q, *k;          // as attention uses them (rotated under RoPE); ld C
    const real *q_in, *k_in;    // as given to attention (unrotated); ld C
    const real *gate_keys;      // this head's separate gate keys (ld C), or NULL
    const uint8_t *pad;         // this sequence's key padding (T), or NULL
    const real *S;              // forward: raw q·k of the current block, row i at S + (i - i0)·T
    real *dq, *dk;              // backward: += gradients w.r.t. q, k (rotated space under RoPE); ld ldd
    int ldd;
    real *dq_in, *dk_in;        // backward: += gradients w.r.t. the unrotated inputs; ld C
    real *dgate_keys;           // backward: += gradient w.r.t. gate_keys (ld C), or NULL
    int r0;                     // the first query row (0 but when decoding or streaming): rows r0..T-1
    int transpose_keys;         // the forward's rows are enough to pay for a copy of the keys
                                // transposed (attention makes one; a decoding step's are not)
    int rows;                   // the largest row block (work buffers are sized for it)
    int i0, i1;                 // the current row block
    real *work;                 // this kernel's per-thread work (work_size reals)
    real *partial;              // this kernel's per-head partial parameter gradient (zeroed; partial_size reals)
} PEHead;

typedef struct {
    const char *name;          // its part of pe.type
    // configuration (pe/registry.c serves these to config.c)
    const char *combines;      // "a|b": the parts that may follow this one in pe.type ("cope+rel"), or NULL
    const ConfigKey *keys;     // its pe.* keys; there `applies` names the other parts a key also needs
    int n_keys;                // (NULL: this one alone); the registry turns it into the pe.type values
    void (*resolve)(Config *c, const Config *base);  // derived defaults (always run, like config.c's own)
    int (*check)(const Config *c, const char *src, char *err, int errlen);  // when pe.type has this part
    // options and parameters
    size_t opts_size;          // bytes of its options struct (AttnPE.opts), one per layer it acts on
    // fills opts from the resolved config for layer `layer` (the hot paths then read only these
    // numbers); returns 0 when the kernel does not act on that layer after all (CoPE's every_k_layers)
    int (*setup)(void *opts, AttnPE *pe, const Config *c, int layer);
    // its parameters, in layout order: `global_params` once before the layers' own (a table all layers
    // share), into the opts of the first layer it acts on; `layer_params` after each acting layer's
    // attention projections; `first` is the first acting layer's opts (opts itself on that layer)
    void (*global_params)(void *first, PEParams *pp);
    void (*layer_params)(void *opts, const void *first, PEParams *pp);
    int (*check_length)(const AttnPE *pe, int T, char *err, int errlen);
    // reals this kernel needs in the layer cache (bound after probs) for R query rows against T keys;
    // train_rows: for a training cache, which the backward reads, the block height (R = T), and 0
    // for an inference one (a forward of some rows, no backward); and per thread, per head
    long (*cache_size)(const AttnPE *pe, int B, int R, int T, int C, int H, int train_rows);
    void (*cache_bind)(AttnCache *cache, real *mem, const AttnPE *pe, int B, int R, int T, int C, int H,
                       int train_rows);
    long (*work_size)(const AttnPE *pe, int T, int dh, int rows);
    long (*partial_size)(const AttnPE *pe, int dh);
    // before any head, outside the parallel region, of the forward (backward 0) or the backward
    // (1): tables that depend on T or on the layer's own, kept in the layer's opts (each model has
    // its own, so the replicas of micro.h may run attention at the same time); `release` frees them
    void (*prepare)(const AttnPE *pe, int T, int dh, int backward);
    void (*release)(void *opts);
    // q/k transform: writes the transformed q (rows r0..T-1) and k (all rows) into the cache and
    // points *qa, *ka at them
    void (*qk_forward)(const real **qa, const real **ka, AttnCache *cache, const real *q, const real *k,
                       const AttnPE *pe, int B, int T, int r0, int C, int H);
    void (*qk_saved)(const real **qa, const real **ka, const AttnCache *cache);
    void (*qk_backward)(PEHead *hd);  // dq_in, dk_in += Jᵀ·(dq, dk) for this head
    // logit term
    void (*head_forward)(PEHead *hd);
    void (*block_forward)(PEHead *hd);
    void (*row_logits)(PEHead *hd, int i, real *a);  // a[j] += term_ij for j <= i
    void (*head_backward)(PEHead *hd);
    void (*block_backward)(PEHead *hd);
    void (*row_backward)(PEHead *hd, int i, const real *dA, real *dS);  // dA, dS: row i, j <= i
    void (*block_backward_end)(PEHead *hd);
    void (*head_backward_end)(PEHead *hd);
    // dtable += Σ_h partials[h·partial_size ...] in order h = 0..nbh-1
    void (*reduce)(const AttnPE *pe, const real *partials, long nbh, int dh);
} PEKernel;

// Row i of the head's (B,H,R,·) cache arrays (AttnCache).
static inline long pe_cache_row(const PEHead *hd, int i) { return hd->bh * (long)(hd->T - hd->r0) + (i - hd->r0); }

// The registry (registry.c): every encoding, in the order attention calls their hooks.
extern const PEKernel *const pe_kernels[];
extern const int pe_n_kernels;

// The AttnPE.parts bit of the kernel called `name`, 0 when none is (model_create and tests resolve
// names once; the hot paths test bits).
unsigned pe_bit(const char *name);
// The parts of a pe.type value ("none", "cope", "cope+rel", ...) as AttnPE.parts bits.
unsigned pe_parse_type(const char *type);
// Whether kernel k acts under pe, and its options there (NULL when it does not act).
int pe_on(const AttnPE *pe, const PEKernel *k);
const void *pe_opts(const AttnPE *pe, const PEKernel *k);
// Whether one of the kernels in parts transforms q and k before the logits (RoPE).
int pe_transforms_qk(unsigned parts);

// One layer's AttnPE from the resolved config (c->pe.type and the kernels' options): the model calls
// these for each layer l of n_layers, tests for one. pe_layer_init returns -1 (out of memory) with
// err; pe_declare_global runs before the layers' parameters, pe_declare_layer after layer l's
// attention projections (layers[] is every layer's AttnPE, so shared tables reach the later layers).
int pe_layer_init(AttnPE *pe, const Config *c, int layer, char *err, int errlen);
void pe_layer_free(AttnPE *pe);
void pe_declare_global(AttnPE *layers, int n_layers, PEParams *pp);
void pe_declare_layer(AttnPE *layers, int layer, PEParams *pp);

#endif
