// The decoder-only transformer: one flat parameter buffer with named slices (gradients and the
// optimizer's moments mirror it), activations allocated once for a batch shape, and the forward and
// backward passes over the layers.
//
//   tokens ─► embedding (+ absolute PE) ─► dropout ─► L × decoder layer ─► [final LN] ─► logits ─► loss
//   decoder layer, norm "post" (official):  x = LN(x + drop(MHA(x)));  x = LN(x + drop(FF(x)))
//                  norm "pre"  (GPT-2):     x = x + drop(MHA(LN(x)));  x = x + drop(FF(LN(x)))
//   FF = Linear(C,F) → ReLU|GELU → dropout → Linear(F,C)
#ifndef MODEL_H
#define MODEL_H

#include <stdint.h>

#include "attention.h"
#include "config.h"
#include "real.h"
#include "batch.h"

// A named slice of the parameter buffer.
typedef struct {
    char name[48];
    long offset;  // into params (and grads, adam m, adam v)
    long size;
    int decay;    // weight decay applies (never biases, LayerNorm; embeddings by config)
    char init;    // 'z' zeros, 'o' ones, 'n' normal(0, scale), 'u' uniform(-scale, scale)
    double scale;
} ParamTensor;

// Where one layer's parameters live (pointers into params; NULL when absent).
typedef struct {
    real *ln1_w, *ln1_b;        // (C) post: after attention; pre: before it
    real *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;  // (C,C), (C)
    real *wkc, *bkc;            // (C,C), (C) keys of the position encodings' own (CoPE's sep_keys)
    real *ln2_w, *ln2_b;        // (C)
    real *fc1_w, *fc1_b;        // (F,C), (F)
    real *fc2_w, *fc2_b;        // (C,F), (C)
} LayerParams;

// What one layer's forward saves for its backward.
typedef struct {
    real *x_in;                 // (B,T,C) the layer's input
    real *ln1, *ln1_mean, *ln1_rstd;  // (B,T,C), (B,T), (B,T)
    real *q, *k, *v, *kc;       // (B,T,C); kc only with sep_keys
    real *att;                  // (B,T,C) heads concatenated, before the output projection
    real *cache_mem;            // attention_cache_size reals, bound for the batch's B and T
    AttnCache cache;
    real *res1;                 // (B,T,C) x + drop(attn)
    real *ln2, *ln2_mean, *ln2_rstd;
    real *fc1;                  // (B,T,F) before the activation; its derivative there after a training forward
    real *act;                  // (B,T,F) after activation and dropout (the input of fc2)
    real *res2;                 // (B,T,C) the second residual sum
} LayerActs;

typedef struct {
    Config cfg;                 // as given (saved with checkpoints); the passes read only the resolved
                                // fields below, never its strings
    int V, C, H, F, L;          // vocabulary, width, heads, FF width, layers
    int block_size;
    int pre, gelu;              // model.norm == pre, model.activation == gelu
    int abs_learned, abs_sinusoidal;  // the absolute PE added to the embeddings, if any
    AttnPE *pe;                 // (L) each layer's position encodings (options, tables), built once by
                                // model_init
    // parameters, gradients, Adam moments: one layout
    long n_params;
    real *params, *grads, *adam_m, *adam_v;
    ParamTensor *tensors;
    int n_tensors;
    int shares_params;          // a replica (model_replica): params are another model's
    real *wte;                  // (V,C)
    real *wpe;                  // (block_size,C) learned absolute PE, or NULL
    real *lnf_w, *lnf_b;        // (C) final LayerNorm (pre-norm only)
    real *lm_head;              // (V,C); == wte when tied
    LayerParams *layers;
    // activations for up to act_B × act_T
    int act_B, act_T;
    real *act_mem;
    long act_size;
    LayerActs *acts;
    real *emb;                  // (B,T,C) embedding output after dropout (layer 0's input)
    real *sinusoid;             // (act_T,C) sinusoidal absolute PE table, or NULL
    real *lnf, *lnf_mean, *lnf_rstd;  // final LayerNorm (pre-norm)
    real *logits;               // (B,T,V)
    real *probs;                // (B,T,V) softmax, for the backward
    real *losses;               // (B,T)
    real *scratch;              // (B,T,C) forward temporary
    int infer_rows;             // inference mode (model_set_inference): rows per attention block, else 0
    real *infer_cache;          // inference: the attention cache of one block of one sequence
    // backward buffers: dx the residual stream's gradient, dtmp and datt (B,T,C) temporaries,
    // dwide (B,T,F); the logits buffer holds dlogits during the backward
    real *dx, *dtmp, *datt, *dwide;
    real *dq, *dk, *dv, *dkc;   // (B,T,C)
    int keep_positions;         // CoPE layers keep their positions in the cache (for pictures); set
                                // before model_prepare
    // the batch of the last forward
    int B, T;
    uint64_t dropout_key;       // 0 with dropout off
} Model;

// Builds the parameter layout for cfg and a task vocabulary of V, and initialises the parameters
// from cfg->run.seed (official initialisation, see README). Returns 0, or -1 with err.
// model_create = model_init (dimensions and layout, n_params: no large allocation, so memory can be
// budgeted first) + model_alloc (parameters, and with `training` their gradients and Adam moments).
int model_create(Model *m, const Config *cfg, int V, char *err, int errlen);
int model_init(Model *m, const Config *cfg, int V, char *err, int errlen);
int model_alloc(Model *m, int training, char *err, int errlen);
// A replica of the training model m: its parameters (shared, not copied: m's updates are the
// replica's), and gradients and activations of its own (model_prepare sizes them), so that replicas
// can run passes at the same time on different batches. No Adam moments. m must outlive it.
int model_replica(Model *r, const Model *m, char *err, int errlen);
// 0 when every value of buf (a parameter-shaped buffer: params, grads, a moment) is finite; else -1
// with err naming `what`, the tensor, the value and its index.
int model_check_finite(const Model *m, const real *buf, const char *what, char *err, int errlen);
void model_free(Model *m);

// Sizes the activations for batches of up to B sequences of up to T positions (reallocating only
// when larger than before). Returns -1 with err when the model cannot run at T (learned absolute
// PE beyond block_size, uncapped relative PE beyond its table).
int model_prepare(Model *m, int B, int T, char *err, int errlen);

// The number of reals the activations for B × T take (model_prepare allocates them), and the same in
// bytes for any B and T (no overflow: an estimate past what any machine holds).
long model_activation_size(Model *m, int B, int T);
double model_activation_bytes(Model *m, int B, int T);

// 0 when the model can run at context T, else -1 with the reason in err.
int model_check_length(const Model *m, int T, char *err, int errlen);

// Forward pass over batch b. dropout_key != 0 turns dropout on (masks drawn from that key).
// Returns the summed loss over b's loss mask (in double); per-position losses are in m->losses and
// the logits in m->logits (valid until model_backward, which reuses that buffer).
double model_forward(Model *m, const Batch *b, uint64_t dropout_key);
// Inference mode, set before model_prepare (0 turns it off): no backward and no per-layer attention
// caches; attention runs over blocks of `rows` query rows of one sequence through one shared cache
// (memory grows with rows·T instead of the layers' B·H·T²), and dropout is off. For evaluation at
// long contexts and for decoding.
void model_set_inference(Model *m, int rows);
// The forward of rows t0..T-1 of one sequence (b->B = 1) whose rows 0..t0-1 an earlier call on the
// same tokens computed (their keys and values stay in the activations): decoding a token costs O(T)
// per layer instead of a whole forward. Inference mode only (t0 = 0 is model_forward). Returns the
// summed loss of rows t0..T-1; their logits are at m->logits + t0·V.
double model_forward_from(Model *m, const Batch *b, int t0);
// Backward of loss_scale × (the summed loss of the last forward), accumulated into m->grads.
void model_backward(Model *m, const Batch *b, real loss_scale);
void model_zero_grad(Model *m);

#endif
