// The run configuration: one schema table drives defaults, validation of the JSON file and of
// --set overrides, the resolved JSON saved with a run, the printed table, the resume check and the
// README's key table. Nothing here exits: every failure is one line in err and a -1.
#include "config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "input.h"

#define CHOICE_LEN 32        // char[32] holds every KEY_CHOICE value (see the structs in config.h)
#define MAX_KEYS 256
#define CONFIG_MAX_BYTES (16u << 20)  // a config is a page of JSON; anything this large is a wrong path
_Static_assert(TASK_STR == CONFIG_STR, "KEY_STRING fields are assumed to hold CONFIG_STR bytes");

#define OFF(field) offsetof(Config, field)

// The columns: section, name, type, offset, min, max, choices, default (JSON), flags, applies, doc.
static const ConfigKey core_keys[] = {
    {"model", "n_layers", KEY_INT, OFF(model.n_layers), 1, 1024, NULL, "4", 0, NULL, "Decoder layers."},
    {"model", "d_model", KEY_INT, OFF(model.d_model), 1, 65536, NULL, "256", 0, NULL,
     "Width of the residual stream; a multiple of model.n_heads."},
    {"model", "n_heads", KEY_INT, OFF(model.n_heads), 1, 1024, NULL, "4", 0, NULL,
     "Attention heads; the head dimension is d_model / n_heads."},
    {"model", "d_ff", KEY_INT, OFF(model.d_ff), 0, 1048576, NULL, "0", 0, NULL,
     "Feed-forward width; 0 means 4 * d_model."},
    {"model", "norm", KEY_CHOICE, OFF(model.norm), 0, 0, "post|pre", "\"post\"", 0, NULL,
     "LayerNorm placement: post = after each residual sum (the official code), pre = before each "
     "sublayer plus a final LayerNorm (GPT-2)."},
    {"model", "activation", KEY_CHOICE, OFF(model.activation), 0, 0, "relu|gelu", "\"relu\"", 0, NULL,
     "Feed-forward activation."},
    {"model", "tie_embeddings", KEY_BOOL, OFF(model.tie_embeddings), 0, 0, NULL, "true", 0, NULL,
     "The output projection is the token embedding matrix."},
    {"model", "dropout", KEY_REAL, OFF(model.dropout), 0, 1, NULL, "0.1", 0, NULL,
     "Dropout probability (below 1) on embeddings, attention probabilities, residual branches and the "
     "feed-forward hidden layer."},
    {"model", "block_size", KEY_INT, OFF(model.block_size), 1, TASK_MAX_CONTEXT, NULL, "512", 0, NULL,
     "The longest context the model trains on."},

    // choices: pe_type_choices(), and the encodings' keys follow (config_schema)
    {"pe", "type", KEY_CHOICE, OFF(pe.type), 0, 0, "", "\"abs\"", 0, NULL,
     "Position encoding. The other pe keys apply only to some types and are refused under the others."},

    {"train", "optimizer", KEY_CHOICE, OFF(train.optimizer), 0, 0, "adamw|adam", "\"adamw\"", 0, NULL,
     "adamw: decoupled weight decay; adam: Adam with train.weight_decay as an L2 term added to the gradient "
     "(set it to 0 for plain Adam)."},
    {"train", "lr", KEY_REAL, OFF(train.lr), 0, 10, NULL, "3e-4", 1, NULL, "Peak learning rate."},
    {"train", "beta1", KEY_REAL, OFF(train.beta1), 0, 1, NULL, "0.9", 1, NULL, "Adam beta1 (below 1)."},
    {"train", "beta2", KEY_REAL, OFF(train.beta2), 0, 1, NULL, "0.999", 1, NULL, "Adam beta2 (below 1)."},
    {"train", "eps", KEY_REAL, OFF(train.eps), 1e-30, 1, NULL, "1e-8", 1, NULL, "Adam epsilon."},
    {"train", "weight_decay", KEY_REAL, OFF(train.weight_decay), 0, 10, NULL, "0.1", 1, NULL,
     "Decoupled weight decay (adamw); never on biases and LayerNorm."},
    {"train", "decay_embeddings", KEY_BOOL, OFF(train.decay_embeddings), 0, 0, NULL, "false", 1, NULL,
     "Weight decay on the token and position embeddings too."},
    {"train", "schedule", KEY_CHOICE, OFF(train.schedule), 0, 0, "constant|linear|cosine", "\"cosine\"", 1, NULL,
     "Learning-rate schedule after the warmup, from lr down to lr_min at train.steps."},
    {"train", "warmup_steps", KEY_INT, OFF(train.warmup_steps), 0, 1e9, NULL, "0", 1, NULL,
     "Linear warmup from 0 to lr over this many steps."},
    {"train", "lr_min", KEY_REAL, OFF(train.lr_min), 0, 10, NULL, "0", 1, NULL,
     "The schedule's floor; at most train.lr."},
    {"train", "grad_clip", KEY_REAL, OFF(train.grad_clip), 0, 1e9, NULL, "1.0", 1, NULL,
     "Clip the global gradient norm to this; 0 = off."},
    {"train", "batch_size", KEY_INT, OFF(train.batch_size), 1, 1048576, NULL, "16", 0, NULL,
     "Sequences per optimizer step. Not resume-safe: it changes what a step consumes from the data stream."},
    {"train", "grad_accum", KEY_INT, OFF(train.grad_accum), 1, 1048576, NULL, "1", 1, NULL,
     "Micro-batches per step (batch_size / grad_accum sequences each); must divide train.batch_size. They run at once on up to run.threads model replicas, one thread each: small models train 1.2-1.6x faster in micro-batches of about 512 tokens (README, Benchmark)."},
    {"train", "steps", KEY_INT, OFF(train.steps), 1, 1e9, NULL, "1000", 1, NULL,
     "Optimizer steps in the whole run (raise it to extend a run on resume)."},
    {"train", "loss_norm", KEY_CHOICE, OFF(train.loss_norm), 0, 0, "token|sequence", "\"token\"", 1, NULL,
     "The batch loss is divided by the counted tokens or by the sequences (the official counting code)."},
    {"train", "eval_interval", KEY_INT, OFF(train.eval_interval), 0, 1e9, NULL, "100", 1, NULL,
     "Steps between evaluations; 0 = only at the end."},
    {"train", "eval_sequences", KEY_INT, OFF(train.eval_sequences), 0, 1e9, NULL, "256", 1, NULL,
     "Sequences per evaluation during training; 0 = the whole split."},
    {"train", "log_interval", KEY_INT, OFF(train.log_interval), 1, 1e9, NULL, "10", 1, NULL,
     "Steps between progress lines."},
    {"train", "checkpoint_interval", KEY_INT, OFF(train.checkpoint_interval), 1, 1e9, NULL, "500", 1, NULL,
     "Steps between checkpoints; one is also written at the end and when the run is stopped."},
    {"train", "keep_checkpoints", KEY_INT, OFF(train.keep_checkpoints), 1, 1e6, NULL, "3", 1, NULL,
     "The newest checkpoints kept in the run folder."},

    {"run", "name", KEY_STRING, OFF(run.name), 0, 0, NULL, "\"\"", 1, NULL,
     "Run name (the folder out_dir/name); empty = the config file's name without extension."},
    {"run", "out_dir", KEY_STRING, OFF(run.out_dir), 0, 0, NULL, "\"runs\"", 1, NULL,
     "Folder holding the run folders."},
    {"run", "seed", KEY_INT, OFF(run.seed), 0, 9007199254740991.0, NULL, "1", 0, NULL,
     "Seed of the initialisation, the data stream and dropout."},
    {"run", "threads", KEY_INT, OFF(run.threads), 0, 4096, NULL, "0", 1, NULL,
     "The most threads for the OpenMP loops, which also run the products (one single-threaded product per tile); 0 = all cores. Results do not depend on the count (work is split by shapes alone), so a run resumed with another count continues bit for bit. While other processes compete for the cores, `./train` runs fewer threads when fewer measure faster (src/system.h, the thread governor)."},
};

static const char *const sections[] = {"model", "pe", "task", "train", "run"};
enum { N_SECTIONS = 5 };

// The key whose value decides which of its section's keys apply.
static const char *selector_name(const char *section) {
    if (!strcmp(section, "pe")) return "type";
    if (!strcmp(section, "task")) return "name";
    return NULL;
}

static ConfigKey schema[MAX_KEYS];
static int schema_n = -1;

const ConfigKey *config_schema(int *n) {
    if (schema_n < 0) {
        int nc = (int)(sizeof core_keys / sizeof core_keys[0]), np = 0, nt = 0, at = 0;
        const ConfigKey *pk = pe_config_keys(&np), *tk = task_config_keys(&nt);
        if (nc + np + nt > MAX_KEYS) np = nt = 0;  // config_schema_check reports the overflow
        for (int i = 0; i < nc; i++) {
            schema[at++] = core_keys[i];
            if (strcmp(core_keys[i].section, "pe") || strcmp(core_keys[i].name, "type")) continue;
            schema[at - 1].choices = pe_type_choices();
            memcpy(schema + at, pk, sizeof(ConfigKey) * (size_t)np);
            at += np;
        }
        memcpy(schema + at, tk, sizeof(ConfigKey) * (size_t)nt);
        schema_n = at + nt;
    }
    *n = schema_n;
    return schema;
}

// ---------------------------------------------------------------- fields and their text

static void *field(Config *c, const ConfigKey *k) { return (char *)c + k->offset; }
static const void *cfield(const Config *c, const ConfigKey *k) { return (const char *)c + k->offset; }
// run.seed is the one integer key stored as a long.
static int is_long(const ConfigKey *k) { return k->type == KEY_INT && k->offset == OFF(run.seed); }
static size_t field_size(const ConfigKey *k) {
    switch (k->type) {
    case KEY_INT: return is_long(k) ? sizeof(long) : sizeof(int);
    case KEY_REAL: return sizeof(double);
    case KEY_BOOL: return sizeof(int);
    case KEY_STRING: return CONFIG_STR;
    case KEY_CHOICE: return CHOICE_LEN;
    }
    return 0;
}

void config_copy_key(Config *dst, const Config *src, const ConfigKey *k) {
    memcpy((char *)dst + k->offset, (const char *)src + k->offset, field_size(k));
}

// The shortest decimal that reads back as exactly v.
static void fmt_real(char *buf, size_t n, double v) {
    if (v == floor(v) && fabs(v) < 1e15) {  // integral: 10 rather than 1e+01
        snprintf(buf, n, "%.0f", v);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static long get_int(const Config *c, const ConfigKey *k) {
    return is_long(k) ? *(const long *)cfield(c, k) : *(const int *)cfield(c, k);
}

// The value as JSON text (json != 0) or as plain text for tables.
static void value_text(const Config *c, const ConfigKey *k, char *buf, size_t n, int json) {
    const void *p = cfield(c, k);
    switch (k->type) {
    case KEY_INT: snprintf(buf, n, "%ld", get_int(c, k)); break;
    case KEY_REAL: fmt_real(buf, n, *(const double *)p); break;
    case KEY_BOOL: snprintf(buf, n, "%s", *(const int *)p ? "true" : "false"); break;
    case KEY_STRING:
    case KEY_CHOICE:
        if (json || !*(const char *)p) {
            cJSON *s = cJSON_CreateString((const char *)p);
            char *t = cJSON_PrintUnformatted(s);
            snprintf(buf, n, "%s", t ? t : "\"\"");
            free(t);
            cJSON_Delete(s);
        } else {
            snprintf(buf, n, "%s", (const char *)p);
        }
        break;
    }
}

static int values_equal(const Config *a, const Config *b, const ConfigKey *k) {
    switch (k->type) {
    case KEY_INT: return get_int(a, k) == get_int(b, k);
    case KEY_REAL: return *(const double *)cfield(a, k) == *(const double *)cfield(b, k);
    case KEY_BOOL: return *(const int *)cfield(a, k) == *(const int *)cfield(b, k);
    default: return !strcmp((const char *)cfield(a, k), (const char *)cfield(b, k));
    }
}

// ---------------------------------------------------------------- lookups and suggestions

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

// Is word one of the '|'-separated items of list?
static int in_list(const char *list, const char *word) {
    size_t w = strlen(word);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == w && !strncmp(p, word, w)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

// The closest item of list to word, written to out ("" when none is close enough).
static void closest_in_list(const char *list, const char *word, char *out, size_t n) {
    int best = 1 << 30;
    out[0] = 0;
    for (const char *p = list; *p;) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char item[64];
        if (len < sizeof item) {
            memcpy(item, p, len);
            item[len] = 0;
            int d = edit_distance(word, item);
            if (d < best) {
                best = d;
                snprintf(out, n, "%s", item);
            }
        }
        if (!e) break;
        p = e + 1;
    }
    int allowed = (int)strlen(word) / 3 + 1;
    if (best > allowed) out[0] = 0;
}

static int find_key(const ConfigKey *s, int n, const char *section, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s[i].section, section) && !strcmp(s[i].name, name)) return i;
    return -1;
}

const ConfigKey *config_find_key(const char *section, const char *name) {
    int n;
    const ConfigKey *s = config_schema(&n);
    int i = find_key(s, n, section, name);
    return i >= 0 ? &s[i] : NULL;
}

static int find_section(const char *name) {
    for (int i = 0; i < N_SECTIONS; i++)
        if (!strcmp(sections[i], name)) return i;
    return -1;
}

// " (did you mean "x.y"?)" for the key nearest to section.name, or "" when none is near.
static void suggest_key(const ConfigKey *s, int n, const char *section, const char *name, char *out, size_t len) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", section, name);
    int best = 1 << 30, bi = -1;
    for (int i = 0; i < n; i++) {
        char kf[160];
        snprintf(kf, sizeof kf, "%s.%s", s[i].section, s[i].name);
        int d = edit_distance(full, kf);
        // the right key in the wrong section is a near miss too
        int dn = edit_distance(name, s[i].name) + (strcmp(section, s[i].section) != 0);
        if (dn < d) d = dn;
        if (d < best) best = d, bi = i;
    }
    int allowed = (int)strlen(name) / 2 + 1;
    if (bi >= 0 && best <= allowed)
        snprintf(out, len, " (did you mean \"%s.%s\"?)", s[bi].section, s[bi].name);
    else
        out[0] = 0;
}

static void suggest_section(const char *name, char *out, size_t len) {
    int best = 1 << 30, bi = -1;
    for (int i = 0; i < N_SECTIONS; i++) {
        int d = edit_distance(name, sections[i]);
        if (d < best) best = d, bi = i;
    }
    if (best <= (int)strlen(name) / 2 + 1)
        snprintf(out, len, " (did you mean \"%s\"?)", sections[bi]);
    else
        out[0] = 0;
}

// ---------------------------------------------------------------- setting one value

// A JSON value as it appears in a message, shortened.
static void json_text(const cJSON *v, char *buf, size_t n) {
    char *t = cJSON_PrintUnformatted(v);
    if (!t) {
        snprintf(buf, n, "?");
        return;
    }
    if (strlen(t) > 48) memcpy(t + 45, "...", 4);
    snprintf(buf, n, "%s", t);
    free(t);
}

static void range_text(const ConfigKey *k, char *buf, size_t n) {
    if (k->type == KEY_INT) {
        snprintf(buf, n, "[%.0f, %.0f]", k->min, k->max);
        return;
    }
    char lo[32], hi[32];
    fmt_real(lo, sizeof lo, k->min);
    fmt_real(hi, sizeof hi, k->max);
    snprintf(buf, n, "[%s, %s]", lo, hi);
}

// String values name files and folders, and the resolved config prints one per line: no control
// characters.
static int check_text(const char *s, const char *where, char *err, int errlen) {
    for (const char *q = s; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) {
            errf(err, errlen, "%s: control character 0x%02x at byte %d; expected printable text", where,
                   (unsigned char)*q, (int)(q - s) + 1);
            return -1;
        }
    return 0;
}

// Validates v against k and stores it. `where` names the source and key ("configs/x.json: train.lr"
// or "--set train.lr"), the prefix of any message.
static int set_value(Config *c, const ConfigKey *k, const cJSON *v, const char *where, char *err, int errlen) {
    char got[64], range[80];
    json_text(v, got, sizeof got);
    void *p = field(c, k);
    switch (k->type) {
    case KEY_INT:
    case KEY_REAL: {
        if (!cJSON_IsNumber(v)) {
            errf(err, errlen, "%s: expected %s, got %s", where, k->type == KEY_INT ? "an integer" : "a number", got);
            return -1;
        }
        double d = v->valuedouble;
        if (k->type == KEY_INT && d != floor(d)) {
            errf(err, errlen, "%s: expected an integer, got %s", where, got);
            return -1;
        }
        if (!(d >= k->min && d <= k->max)) {
            range_text(k, range, sizeof range);
            errf(err, errlen, "%s: %s is out of range %s", where, got, range);
            return -1;
        }
        if (k->type == KEY_REAL)
            *(double *)p = d;
        else if (is_long(k))
            *(long *)p = (long)d;
        else
            *(int *)p = (int)d;
        return 0;
    }
    case KEY_BOOL:
        if (!cJSON_IsBool(v)) {
            errf(err, errlen, "%s: expected true or false, got %s", where, got);
            return -1;
        }
        *(int *)p = cJSON_IsTrue(v) ? 1 : 0;
        return 0;
    case KEY_STRING:
    case KEY_CHOICE: {
        if (!cJSON_IsString(v)) {
            if (k->type == KEY_CHOICE)
                errf(err, errlen, "%s: expected one of %s, got %s", where, k->choices, got);
            else
                errf(err, errlen, "%s: expected a string, got %s", where, got);
            return -1;
        }
        const char *s = v->valuestring;
        size_t cap = field_size(k);
        if (k->type == KEY_CHOICE && !in_list(k->choices, s)) {
            char near[64];
            closest_in_list(k->choices, s, near, sizeof near);
            if (near[0])
                errf(err, errlen, "%s: %s is not one of %s (did you mean \"%s\"?)", where, got, k->choices, near);
            else
                errf(err, errlen, "%s: %s is not one of %s", where, got, k->choices);
            return -1;
        }
        if (strlen(s) >= cap) {
            errf(err, errlen, "%s: %s is too long (at most %zu bytes)", where, got, cap - 1);
            return -1;
        }
        if (check_text(s, where, err, errlen)) return -1;
        memset(p, 0, cap);
        memcpy(p, s, strlen(s));
        return 0;
    }
    }
    return -1;
}

// The value stored for k, which a struct filled in code may hold anything as: a number within the
// range, a choice among the choices, a string terminated within its field and printable.
static int check_stored(const Config *c, const ConfigKey *k, const char *where, char *err, int errlen) {
    char got[CONFIG_STR + 64], range[80];
    const char *p = cfield(c, k);
    switch (k->type) {
    case KEY_INT:
    case KEY_REAL: {
        double d = k->type == KEY_INT ? (double)get_int(c, k) : *(const double *)p;
        if (d >= k->min && d <= k->max) return 0;
        value_text(c, k, got, sizeof got, 1);
        range_text(k, range, sizeof range);
        errf(err, errlen, "%s: %s is out of range %s", where, got, range);
        return -1;
    }
    case KEY_BOOL:
        if (*(const int *)p == 0 || *(const int *)p == 1) return 0;
        errf(err, errlen, "%s: %d, expected 0 or 1 (false or true)", where, *(const int *)p);
        return -1;
    case KEY_STRING:
    case KEY_CHOICE:
        if (!memchr(p, 0, field_size(k))) {
            errf(err, errlen, "%s: no NUL within its %zu bytes", where, field_size(k));
            return -1;
        }
        if (k->type == KEY_CHOICE && !in_list(k->choices, p)) {
            value_text(c, k, got, sizeof got, 1);
            errf(err, errlen, "%s: %s is not one of %s", where, got, k->choices);
            return -1;
        }
        return check_text(p, where, err, errlen);
    }
    return -1;
}

int config_check_task(const TaskConfig *tc, char *err, int errlen) {
    int n;
    const ConfigKey *s = config_schema(&n);
    Config c;
    memset(&c, 0, sizeof c);
    c.task = *tc;
    for (int i = 0; i < n; i++) {
        if (strcmp(s[i].section, "task")) continue;
        char where[96];
        snprintf(where, sizeof where, "task.%s", s[i].name);
        if (check_stored(&c, &s[i], where, err, errlen)) return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- schema self-check

static const char *type_name(KeyType t) {
    switch (t) {
    case KEY_INT: return "int";
    case KEY_REAL: return "real";
    case KEY_BOOL: return "bool";
    case KEY_STRING: return "string";
    case KEY_CHOICE: return "choice";
    }
    return "?";
}

// A '|'-separated list's items, each of length 1..maxlen-1, through fn (stopping at the first
// nonzero return, which it returns).
static int each_item(const char *list, int maxlen, int (*fn)(const char *item, void *ctx), void *ctx) {
    for (const char *p = list; *p;) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char item[64];
        if (len == 0 || (int)len >= maxlen || len >= sizeof item) return -2;
        snprintf(item, sizeof item, "%.*s", (int)len, p);
        int rc = fn ? fn(item, ctx) : 0;
        if (rc) return rc;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int not_in_choices(const char *item, void *choices) { return !in_list(choices, item); }

// The declaration of one key: known section, type, offset, choices, range, default and doc.
static int check_declaration(const ConfigKey *k, const char *where, char *err, int errlen) {
    if (find_section(k->section) < 0) return errf(err, errlen, "%s: unknown section", where);
    if ((int)k->type < KEY_INT || (int)k->type > KEY_CHOICE) return errf(err, errlen, "%s: bad type", where);
    if (k->offset + field_size(k) > sizeof(Config))
        return errf(err, errlen, "%s: offset %zu lies outside Config", where, k->offset);
    if ((k->type == KEY_CHOICE) != (k->choices != NULL))
        return errf(err, errlen, "%s: choices are given exactly for choice keys", where);
    if (k->type == KEY_CHOICE && each_item(k->choices, CHOICE_LEN, NULL, NULL))
        return errf(err, errlen, "%s: choice lengths must be 1..%d", where, CHOICE_LEN - 1);
    if ((k->type == KEY_INT || k->type == KEY_REAL) && !(k->min <= k->max))
        return errf(err, errlen, "%s: min > max", where);
    if (!k->def || !k->doc || !k->doc[0]) return errf(err, errlen, "%s: needs a default and a doc", where);
    cJSON *d = cJSON_Parse(k->def);
    if (!d) return errf(err, errlen, "%s: default %s is not JSON", where, k->def);
    Config scratch;
    char e2[256];
    int rc = set_value(&scratch, k, d, where, e2, sizeof e2);
    cJSON_Delete(d);
    if (rc) return errf(err, errlen, "%s (the default)", e2);
    return 0;
}

// A key's `applies` names choices of its section's selector.
static int check_applies(const ConfigKey *s, int n, const ConfigKey *k, const char *where, char *err, int errlen) {
    const char *sel = selector_name(k->section);
    int si = sel ? find_key(s, n, k->section, sel) : -1;
    if (si < 0 || s[si].type != KEY_CHOICE)
        return errf(err, errlen, "%s: section %s has no selector for `applies`", where, k->section);
    if (each_item(k->applies, 64, not_in_choices, (void *)s[si].choices))
        return errf(err, errlen, "%s: applies to \"%s\", not all of which are %s.%s choices", where, k->applies,
                    k->section, sel);
    return 0;
}

int config_schema_check(char *err, int errlen) {
    int n, np = 0, nt = 0;
    const ConfigKey *s = config_schema(&n);
    pe_config_keys(&np), task_config_keys(&nt);
    if ((int)(sizeof core_keys / sizeof core_keys[0]) + np + nt > MAX_KEYS)
        return errf(err, errlen, "config schema: more than %d keys", MAX_KEYS);
    for (int i = 0; i < n; i++) {
        const ConfigKey *k = &s[i];
        char where[160];
        snprintf(where, sizeof where, "config schema: %s.%s", k->section, k->name);
        if (check_declaration(k, where, err, errlen)) return -1;
        if (find_key(s, n, k->section, k->name) != i) return errf(err, errlen, "%s: declared twice", where);
        if (k->applies && check_applies(s, n, k, where, err, errlen)) return -1;
    }
    for (int i = 0; i < N_SECTIONS; i++) {
        const char *sel = selector_name(sections[i]);
        if (sel && find_key(s, n, sections[i], sel) < 0)
            return errf(err, errlen, "config schema: the selector %s.%s is missing", sections[i], sel);
    }
    return 0;
}

// ---------------------------------------------------------------- loading

static void set_defaults(Config *c, const ConfigKey *s, int n) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < n; i++) {
        cJSON *d = cJSON_Parse(s[i].def);
        char e[8];
        if (d) set_value(c, &s[i], d, "", e, sizeof e);  // config_schema_check vouches for defaults
        cJSON_Delete(d);
    }
}

// Derived defaults: 0 means "from the other keys". `base` supplies those other keys.
static void resolve_derived(Config *c, const Config *base) {
    if (c->model.d_ff == 0) c->model.d_ff = 4 * base->model.d_model;
    pe_config_resolve(c, base);
}

// The current value of the selector governing k, or NULL when k always applies.
static const char *selector_value(const Config *c, const ConfigKey *s, int n, const ConfigKey *k) {
    if (!k->applies) return NULL;
    int si = find_key(s, n, k->section, selector_name(k->section));
    return (const char *)cfield(c, &s[si]);
}

static int key_applies(const Config *c, const ConfigKey *s, int n, const ConfigKey *k) {
    const char *v = selector_value(c, s, n, k);
    return !v || in_list(k->applies, v);
}

// Applies one JSON object of "section": {"key": value} pairs; set[i] records where key i was set.
static int apply_root(Config *c, const ConfigKey *s, int n, const cJSON *root, const char *src, const char **set,
                      char *err, int errlen) {
    if (!cJSON_IsObject(root)) {
        errf(err, errlen, "%s: expected a JSON object with the sections model, pe, task, train, run", src);
        return -1;
    }
    char hint[160], where[512], shown[96];
    for (const cJSON *sec = root->child; sec; sec = sec->next) {
        const char *sname = sec->string ? sec->string : "";
        if (!strcmp(sname, "notes")) {
            // Free text documenting the config's choices (e.g. which settings the paper leaves
            // unknown); read by people, ignored here.
            int text = cJSON_IsString(sec);
            if (cJSON_IsArray(sec)) {
                text = 1;
                for (const cJSON *line = sec->child; line; line = line->next) text &= cJSON_IsString(line);
            }
            if (!text) {
                errf(err, errlen, "%s: notes: expected a string or an array of strings", src);
                return -1;
            }
            continue;
        }
        if (find_section(sname) < 0) {
            suggest_section(sname, hint, sizeof hint);
            errf(err, errlen, "%s: unknown section \"%s\"%s", src, input_printable(sname, strlen(sname), shown, sizeof shown),
                   hint);
            return -1;
        }
        for (const cJSON *o = root->child; o != sec; o = o->next)
            if (o->string && !strcmp(o->string, sname)) {
                errf(err, errlen, "%s: section \"%s\" appears twice", src, sname);
                return -1;
            }
        if (!cJSON_IsObject(sec)) {
            char got[64];
            json_text(sec, got, sizeof got);
            errf(err, errlen, "%s: %s: expected an object of keys, got %s", src, sname, got);
            return -1;
        }
        for (const cJSON *v = sec->child; v; v = v->next) {
            const char *kname = v->string ? v->string : "";
            int i = find_key(s, n, sname, kname);
            if (i < 0) {
                suggest_key(s, n, sname, kname, hint, sizeof hint);
                snprintf(where, sizeof where, "%s.%s", sname, kname);
                errf(err, errlen, "%s: unknown key \"%s\"%s", src, input_printable(where, strlen(where), shown, sizeof shown),
                       hint);
                return -1;
            }
            if (set[i]) {
                errf(err, errlen, "%s: %s.%s is set twice", src, sname, kname);
                return -1;
            }
            snprintf(where, sizeof where, "%s: %s.%s", src, sname, kname);
            if (set_value(c, &s[i], v, where, err, errlen)) return -1;
            set[i] = src;
        }
    }
    return 0;
}

// One "section.key=value" override.
static int apply_override(Config *c, const ConfigKey *s, int n, const char *ov, const char **set, char *err,
                          int errlen) {
    const char *eq = strchr(ov, '=');
    const char *dot = strchr(ov, '.');
    char section[64], name[96], hint[160], where[256], why[400], shown[96];
    if (!eq || !dot || dot > eq) {
        errf(err, errlen, "--set \"%s\": expected section.key=value", input_printable(ov, strlen(ov), shown, sizeof shown));
        return -1;
    }
    snprintf(section, sizeof section, "%.*s", (int)(dot - ov), ov);
    snprintf(name, sizeof name, "%.*s", (int)(eq - dot - 1), dot + 1);
    if (find_section(section) < 0) {
        suggest_section(section, hint, sizeof hint);
        errf(err, errlen, "--set: unknown section \"%s\"%s", input_printable(section, strlen(section), shown, sizeof shown),
               hint);
        return -1;
    }
    int i = find_key(s, n, section, name);
    if (i < 0) {
        suggest_key(s, n, section, name, hint, sizeof hint);
        snprintf(where, sizeof where, "%s.%s", section, name);
        errf(err, errlen, "--set: unknown key \"%s\"%s", input_printable(where, strlen(where), shown, sizeof shown), hint);
        return -1;
    }
    const char *text = eq + 1, *at;
    snprintf(where, sizeof where, "--set %s.%s", section, name);
    cJSON *v = cJSON_ParseWithOpts(text, NULL, 1);
    // Text that is not JSON is a string; so is any value given to a string key (run.name=2024).
    if (!v || ((s[i].type == KEY_STRING || s[i].type == KEY_CHOICE) && !cJSON_IsString(v))) {
        cJSON_Delete(v);
        v = cJSON_CreateString(text);
    } else if (input_json_check(text, v, "", &at, why, sizeof why) != 0) {
        errf(err, errlen, "%s: %s", where, why);
        cJSON_Delete(v);
        return -1;
    }
    int rc = set_value(c, &s[i], v, where, err, errlen);
    cJSON_Delete(v);
    if (rc) return -1;
    set[i] = "--set";
    return 0;
}

// Keys set explicitly under a selector value they do not apply to, derived values, cross-key rules.
static int finish(Config *c, const ConfigKey *s, int n, const char **set, const char *src, char *err, int errlen) {
    for (int i = 0; i < n; i++) {
        if (!set[i] || key_applies(c, s, n, &s[i])) continue;
        const char *sel = selector_name(s[i].section), *value = selector_value(c, s, n, &s[i]);
        int from_file = strcmp(set[i], "--set") != 0, si = find_key(s, n, s[i].section, sel);
        if (from_file && set[si] && !strcmp(set[si], "--set"))  // the override is what the user typed now
            errf(err, errlen, "--set %s.%s \"%s\": %s sets %s.%s, which applies to %s.%s %s only", s[i].section, sel,
                   value, set[i], s[i].section, s[i].name, s[i].section, sel, s[i].applies);
        else
            errf(err, errlen, "%s%s%s.%s applies to %s.%s %s, not \"%s\"", set[i], from_file ? ": " : " ",
                   s[i].section, s[i].name, s[i].section, sel, s[i].applies, value);
        return -1;
    }
    resolve_derived(c, c);

    const ModelConfig *m = &c->model;
    const TrainConfig *t = &c->train;
    char a[32], b[32];
    if (m->d_model % m->n_heads) {
        errf(err, errlen, "%s: model.d_model %d is not a multiple of model.n_heads %d", src, m->d_model, m->n_heads);
        return -1;
    }
    if (pe_config_check(c, src, err, errlen)) return -1;
    if (!(m->dropout < 1)) {
        fmt_real(a, sizeof a, m->dropout);
        errf(err, errlen, "%s: model.dropout must be below 1, got %s", src, a);
        return -1;
    }
    if (!(t->beta1 < 1) || !(t->beta2 < 1)) {
        int first = !(t->beta1 < 1);
        fmt_real(a, sizeof a, first ? t->beta1 : t->beta2);
        errf(err, errlen, "%s: train.%s must be below 1, got %s", src, first ? "beta1" : "beta2", a);
        return -1;
    }
    if (t->lr_min > t->lr) {
        fmt_real(a, sizeof a, t->lr_min);
        fmt_real(b, sizeof b, t->lr);
        errf(err, errlen, "%s: train.lr_min %s exceeds train.lr %s", src, a, b);
        return -1;
    }
    if (t->batch_size % t->grad_accum) {
        errf(err, errlen, "%s: train.batch_size %d is not a multiple of train.grad_accum %d", src, t->batch_size,
               t->grad_accum);
        return -1;
    }
    const char *name = c->run.name;
    if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
        errf(err, errlen, "%s: run.name \"%s\" must be a non-empty folder name without '/'", src, name);
        return -1;
    }
    if (!c->run.out_dir[0]) {
        errf(err, errlen, "%s: run.out_dir must not be empty", src);
        return -1;
    }
    return 0;
}

// Line and column of position pos in text, 1-based.
static void line_col(const char *text, const char *pos, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (const char *p = text; p < pos && *p; p++) {
        if (*p == '\n')
            (*line)++, *col = 1;
        else
            (*col)++;
    }
}

// Parses text and loads it over the defaults, then the overrides, then finishes.
static int load_text(Config *cfg, const char *text, const char *src, const char *stem, const char *const *ov,
                     int n_ov, char *err, int errlen) {
    if (config_schema_check(err, errlen)) return -1;
    int n;
    const ConfigKey *s = config_schema(&n);
    const char *set[MAX_KEYS] = {0};
    set_defaults(cfg, s, n);

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        const char *at = end ? end : text + strlen(text);
        int line, col;
        line_col(text, at, &line, &col);
        // quote the line the parser stopped on (cJSON's position is at or just after the fault)
        const char *ls = at - (col - 1);
        while (*ls == ' ' || *ls == '\t') ls++;
        size_t ll = strcspn(ls, "\r\n");
        if (ll > 60) ll = 60;
        char shown[96];
        if (ll)
            errf(err, errlen, "%s: invalid JSON at line %d, column %d: %s", src, line, col,
                   input_printable(ls, ll, shown, sizeof shown));
        else if (!*at)
            errf(err, errlen, "%s: invalid JSON at line %d, column %d: unexpected end of the text", src, line, col);
        else
            errf(err, errlen, "%s: invalid JSON at line %d, column %d", src, line, col);
        return -1;
    }
    const char *at;
    char why[400];
    if (input_json_check(text, root, "", &at, why, sizeof why) != 0) {
        int line, col;
        line_col(text, at, &line, &col);
        errf(err, errlen, "%s: line %d, column %d: %s", src, line, col, why);
        cJSON_Delete(root);
        return -1;
    }
    int rc = apply_root(cfg, s, n, root, src, set, err, errlen);
    cJSON_Delete(root);
    if (rc) return -1;
    for (int i = 0; i < n_ov; i++)
        if (apply_override(cfg, s, n, ov[i], set, err, errlen)) return -1;
    if (!cfg->run.name[0] && stem) {
        if (strlen(stem) >= CONFIG_STR) {
            errf(err, errlen, "%s: the file name is too long for run.name; set run.name", src);
            return -1;
        }
        char where[CONFIG_STR + 64];
        snprintf(where, sizeof where, "%s: run.name (the file name)", src);
        if (check_text(stem, where, err, errlen)) return -1;
        memset(cfg->run.name, 0, CONFIG_STR);
        memcpy(cfg->run.name, stem, strlen(stem));
    }
    return finish(cfg, s, n, set, src, err, errlen);
}

int config_load(Config *cfg, const char *path, const char *const *overrides, int n_overrides, char *err,
                int errlen) {
    size_t len;
    char *text = input_read_file(path, CONFIG_MAX_BYTES, &len, err, errlen);
    if (!text) return -1;
    if (strlen(text) != len) {
        int line, col;
        line_col(text, text + strlen(text), &line, &col);
        errf(err, errlen, "%s: line %d, column %d: a NUL byte; a config is JSON text", path, line, col);
        free(text);
        return -1;
    }

    // the stem: the file name without folder and extension
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char stem[CONFIG_STR + 1];
    snprintf(stem, sizeof stem, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = 0;

    int rc = load_text(cfg, text, path, stem, overrides, n_overrides, err, errlen);
    free(text);
    return rc;
}

int config_load_text(Config *cfg, const char *json, const char *source, const char *const *overrides,
                     int n_overrides, char *err, int errlen) {
    return load_text(cfg, json, source, NULL, overrides, n_overrides, err, errlen);
}

int config_from_json(Config *cfg, const char *json, const char *source, char *err, int errlen) {
    return load_text(cfg, json, source, NULL, NULL, 0, err, errlen);
}

// ---------------------------------------------------------------- output

char *config_to_json(const Config *cfg) {
    int n;
    const ConfigKey *s = config_schema(&n);
    cJSON *root = cJSON_CreateObject();
    char buf[CONFIG_STR + 64];
    for (int si = 0; si < N_SECTIONS && root; si++) {
        cJSON *sec = cJSON_AddObjectToObject(root, sections[si]);
        for (int i = 0; i < n && sec; i++) {
            const ConfigKey *k = &s[i];
            // keys that do not apply keep their defaults and would be refused on loading
            if (strcmp(k->section, sections[si]) || !key_applies(cfg, s, n, k)) continue;
            const void *p = cfield(cfg, k);
            cJSON *v;
            switch (k->type) {
            case KEY_BOOL: v = cJSON_CreateBool(*(const int *)p); break;
            case KEY_STRING:
            case KEY_CHOICE: v = cJSON_CreateString((const char *)p); break;
            default:  // numbers in our own shortest exact form
                value_text(cfg, k, buf, sizeof buf, 1);
                v = cJSON_CreateRaw(buf);
            }
            if (!v) {
                cJSON_Delete(root);
                return NULL;
            }
            cJSON_AddItemToObject(sec, k->name, v);
        }
    }
    char *out = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    return out;
}

// The value each key would have had with nothing set (derived ones from cfg's own keys).
static void default_config(Config *d, const Config *cfg) {
    int n;
    const ConfigKey *s = config_schema(&n);
    set_defaults(d, s, n);
    resolve_derived(d, cfg);
    memcpy(d->run.name, cfg->run.name, CONFIG_STR);  // defaults to the file stem: never "changed"
}

void config_print(const Config *cfg, FILE *f) {
    int n;
    const ConfigKey *s = config_schema(&n);
    Config def;
    default_config(&def, cfg);
    int width = 0;
    for (int i = 0; i < n; i++) {
        int w = (int)(strlen(s[i].section) + 1 + strlen(s[i].name));
        if (w > width) width = w;
    }
    char full[160], val[CONFIG_STR + 64];
    fprintf(f, "config (* differs from the default):\n");
    for (int si = 0; si < N_SECTIONS; si++)
        for (int i = 0; i < n; i++) {
            const ConfigKey *k = &s[i];
            if (strcmp(k->section, sections[si]) || !key_applies(cfg, s, n, k)) continue;
            snprintf(full, sizeof full, "%s.%s", k->section, k->name);
            value_text(cfg, k, val, sizeof val, 0);
            fprintf(f, "%c %-*s  %s\n", values_equal(cfg, &def, k) ? ' ' : '*', width, full, val);
        }
}

int config_check_resume(const Config *saved, const Config *now, FILE *log, char *err, int errlen) {
    int n;
    const ConfigKey *s = config_schema(&n);
    char a[CONFIG_STR + 64], b[CONFIG_STR + 64];
    for (int i = 0; i < n; i++) {
        const ConfigKey *k = &s[i];
        if ((k->flags & KEY_RESUME_SAFE) || values_equal(saved, now, k)) continue;
        value_text(saved, k, a, sizeof a, 1);
        value_text(now, k, b, sizeof b, 1);
        errf(err, errlen, "resume: %s.%s is %s in the checkpoint but %s now, and it cannot change on resume",
               k->section, k->name, a, b);
        return -1;
    }
    for (int i = 0; i < n && log; i++) {
        const ConfigKey *k = &s[i];
        if (values_equal(saved, now, k)) continue;
        value_text(saved, k, a, sizeof a, 1);
        value_text(now, k, b, sizeof b, 1);
        fprintf(log, "resume: %s.%s %s -> %s\n", k->section, k->name, a, b);
    }
    return 0;
}

// Markdown table cell text: '|' would end the cell.
static void md_cell(FILE *f, const char *text) {
    for (const char *p = text; *p; p++) {
        if (*p == '|')
            fputs("\\|", f);
        else
            fputc(*p, f);
    }
}

void config_schema_markdown(FILE *f) {
    int n;
    const ConfigKey *s = config_schema(&n);
    fprintf(f, "| key | type | default | range / choices | doc |\n|---|---|---|---|---|\n");
    for (int si = 0; si < N_SECTIONS; si++)
        for (int i = 0; i < n; i++) {
            const ConfigKey *k = &s[i];
            if (strcmp(k->section, sections[si])) continue;
            char range[80] = "";
            if (k->type == KEY_INT || k->type == KEY_REAL) range_text(k, range, sizeof range);
            fprintf(f, "| `%s.%s` | %s | `%s` | ", k->section, k->name, type_name(k->type), k->def);
            if (k->type == KEY_CHOICE) {
                for (const char *p = k->choices; *p; p++) {
                    if (p == k->choices) fputc('`', f);
                    if (*p == '|')
                        fputs("`, `", f);
                    else
                        fputc(*p, f);
                }
                fputc('`', f);
            } else {
                fputs(range, f);
            }
            fputs(" | ", f);
            md_cell(f, k->doc);
            size_t dl = strlen(k->doc);
            int ends = dl && (k->doc[dl - 1] == '.' || k->doc[dl - 1] == ')');
            if ((k->applies || (k->flags & KEY_RESUME_SAFE)) && !ends) fputc('.', f);
            if (k->applies) {
                fprintf(f, " Only with %s.%s ", k->section, selector_name(k->section));
                md_cell(f, k->applies);
                fputc('.', f);
            }
            fprintf(f, "%s |\n", k->flags & KEY_RESUME_SAFE ? " May change on resume." : "");
        }
}
