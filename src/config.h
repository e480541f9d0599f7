// Run configuration: a JSON file with sections model, pe, task, train and run (and an optional
// top-level "notes": free text, ignored); every key is
// declared once in a schema (name, type, range or choices, default, doc) that drives validation,
// defaults, --set overrides, the resolved-config printout and README's table.
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "batch.h"
#include "tasks/task_config.h"

#define CONFIG_STR 256

typedef struct {
    int n_layers;
    int d_model;
    int n_heads;
    int d_ff;              // 0 in the file means 4·d_model; resolved to the number
    char norm[32];         // post | pre
    char activation[32];   // relu | gelu
    int tie_embeddings;
    double dropout;
    int block_size;        // the longest context the model trains on
} ModelConfig;

typedef struct {
    char type[32];         // none | abs | rel | rope | cope | cope+rel | cope+rope | abs+rel
    char abs_kind[32];     // learned | sinusoidal              (abs)
    int npos;              // CoPE positions 0..npos-1; 0 = block_size+1 (cope)
    int nodiv;             // CoPE term not divided by sqrt(dh) (cope)
    int sep_keys;          // separate key projection for the gates (cope)
    int every_k_layers;    // CoPE on layers with (l+1) % k == 0, relative PE elsewhere (cope+rel)
    int shared_table;      // layers share one CoPE table (cope)
    char rope_gates[32];   // rotated | unrotated: what the gates see (cope+rope)
    char keep_gates[32];   // auto | always | never: training keeps the gates for the backward (cope)
    int rel_max_distance;  // relative table size; 0 = block_size (rel)
    int rel_capped;        // distances beyond the table reuse its farthest entry (rel)
    char rel_beyond[32];   // refuse | zero | cap: distances beyond the table (rel)
    double rope_base;      // (rope)
} PEConfig;

typedef struct {
    char optimizer[32];    // adamw | adam
    double lr;
    double beta1, beta2, eps;
    double weight_decay;   // decoupled (adamw); never on biases and LayerNorm
    int decay_embeddings;  // weight decay on token/position embeddings too
    char schedule[32];     // constant | linear | cosine
    int warmup_steps;
    double lr_min;         // the schedule's floor
    double grad_clip;      // global-norm clip; 0 = off
    int batch_size;        // sequences per optimizer step
    int grad_accum;        // micro-batches per step (batch_size must divide evenly)
    int steps;
    char loss_norm[32];    // token | sequence
    int eval_interval;     // steps between evaluations; 0 = only at the end
    int eval_sequences;    // sequences per evaluation; 0 = the whole split
    int log_interval;
    int checkpoint_interval;
    int keep_checkpoints;
} TrainConfig;

typedef struct {
    char name[CONFIG_STR];     // default: the config file's stem
    char out_dir[CONFIG_STR];  // runs/<name> lives here
    long seed;
    int threads;               // 0 = all cores (omp_get_num_procs)
} RunConfig;

typedef struct {
    ModelConfig model;
    PEConfig pe;
    TaskConfig task;
    TrainConfig train;
    RunConfig run;
} Config;

// Schema of one key.
typedef enum { KEY_INT, KEY_REAL, KEY_BOOL, KEY_STRING, KEY_CHOICE } KeyType;
typedef struct {
    const char *section;   // "model", "pe", "task", "train", "run"
    const char *name;
    KeyType type;
    size_t offset;         // into Config
    double min, max;       // inclusive range for numbers
    const char *choices;   // KEY_CHOICE: "a|b|c"
    const char *def;       // default, as JSON text
    int flags;             // KEY_RESUME_SAFE, KEY_EVAL_SAFE
    const char *applies;   // "a|b": the values of the section's selector (pe.type, task.name) this key
                           // applies to; setting it under another value is refused. NULL: always.
    const char *doc;
} ConfigKey;
enum {
    KEY_RESUME_SAFE = 1,  // may differ between a checkpoint and a resumed run
    KEY_EVAL_SAFE = 2,    // ./eval may override it: it changes nothing at the training length (a PE's
                          // behaviour beyond its table), so the trained model stays the same
};

// All keys: config.c's own table with the position encodings' keys after pe.type (pe_config_keys,
// pe/registry.c), followed by the task keys (task_config_keys, tasks/task_keys.c).
const ConfigKey *config_schema(int *n);
// The schema's key section.name, or NULL.
const ConfigKey *config_find_key(const char *section, const char *name);
// Copies key k's value from src to dst.
void config_copy_key(Config *dst, const Config *src, const ConfigKey *k);
const ConfigKey *task_config_keys(int *n);
// The pe keys every registered encoding declares, `applies` filled in with the pe.type values that
// contain the encoding; the pe.type choices, composed from the encodings ("none", each one, and the
// pairs "a+b" that a allows); the encodings' derived defaults (0 = from the other keys, `base`
// supplies them) and their cross-key rules (for the parts of c's pe.type; -1 with "src: ..." in err).
const ConfigKey *pe_config_keys(int *n);
const char *pe_type_choices(void);
void pe_config_resolve(Config *c, const Config *base);
int pe_config_check(const Config *c, const char *src, char *err, int errlen);
// Checks the schema itself (defaults valid, keys unique, choices sensible); every load runs it.
int config_schema_check(char *err, int errlen);
// README's table of every key: key | type | default | range or choices | doc.
void config_schema_markdown(FILE *f);

// Defaults, then the JSON file, then each "section.key=value" override (value parsed as JSON,
// or as a plain string when it is not JSON), then cross-key validation and resolution of
// derived defaults (d_ff, npos, rel_max_distance, run.name from the file stem).
// Returns 0, or -1 with one line in err naming the file/key, the value and what was expected.
int config_load(Config *cfg, const char *path, const char *const *overrides, int n_overrides, char *err,
                int errlen);
// Same, with the JSON text given instead of a file (the embedded default config); source names it in
// messages and run.name must be set in the text or by an override.
int config_load_text(Config *cfg, const char *json, const char *source, const char *const *overrides,
                     int n_overrides, char *err, int errlen);
// Same from JSON text (a checkpoint's saved config); source names it in messages.
int config_from_json(Config *cfg, const char *json, const char *source, char *err, int errlen);
// The resolved config as pretty JSON (malloc'd), loadable by config_from_json.
char *config_to_json(const Config *cfg);
// A table of every key and its value, marking the ones that differ from the default.
void config_print(const Config *cfg, FILE *f);
// Checks a task section filled in code (task_create's caller may not have loaded a config) against
// the schema: numbers within their ranges, choices among theirs, strings terminated and printable.
// Returns 0, or -1 with err "task.KEY: value ..." as a config file would get.
int config_check_task(const TaskConfig *tc, char *err, int errlen);
// Compares a checkpoint's config with the current one: returns -1 (and names the first key in
// err) if a key that is not resume_safe differs; logs the safe differences to `log` (may be NULL).
int config_check_resume(const Config *saved, const Config *now, FILE *log, char *err, int errlen);

#endif
