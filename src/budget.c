#include "budget.h"

#include <stdlib.h>
#include <string.h>

#include "tasks/task.h"

#define GIB 1073741824.0

static void add(Budget *b, double bytes, const char *shrink, const char *name) {
    if (b->n == BUDGET_MAX_PARTS) return;
    BudgetPart *p = &b->parts[b->n++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->bytes = bytes;
    p->shrink = shrink;
}

void budget_model(Budget *b, Model *m, int training, int B, int T, int n_batches) {
    static const char *shape = "model.d_model, model.n_layers, model.d_ff";
    double params = (double)m->n_params * sizeof(real);
    add(b, params, shape, "parameters");
    if (training) {
        add(b, params, shape, "gradients");
        add(b, 2 * params, shape, "Adam moments (2)");
    }
    char name[96];
    snprintf(name, sizeof name, "activations (batch %d x context %d)", B, T);
    add(b, model_activation_bytes(m, B, T),
        training ? "train.batch_size (or more train.grad_accum), the task's length, task.eval_length"
                 : "--batch, --lengths",
        name);
    double per_batch = (double)B * T * (2 * sizeof(int) + 3 * sizeof(uint8_t));
    snprintf(name, sizeof name, "batches (%d of %d x %d)", n_batches, B, T);
    add(b, n_batches * per_batch, training ? "train.batch_size" : "--batch", name);
}

double budget_total(const Budget *b) {
    double t = 0;
    for (int i = 0; i < b->n; i++) t += b->parts[i].bytes;
    return t;
}

static void format_bytes(char *out, size_t n, double bytes) {
    if (bytes >= 1e15)
        snprintf(out, n, "%.3g TiB", bytes / (GIB * 1024));
    else if (bytes >= GIB)
        snprintf(out, n, "%.2f GiB", bytes / GIB);
    else
        snprintf(out, n, "%.1f MiB", bytes / 1048576.0);
}

void budget_print(const Budget *b, FILE *f, const char *indent) {
    char s[32];
    for (int i = 0; i < b->n; i++) {
        format_bytes(s, sizeof s, b->parts[i].bytes);
        fprintf(f, "%s%-44s %12s\n", indent, b->parts[i].name, s);
    }
    format_bytes(s, sizeof s, budget_total(b));
    fprintf(f, "%s%-44s %12s\n", indent, "total", s);
}

int budget_check(const Budget *b, double limit, char *err, int errlen) {
    double total = budget_total(b);
    if (limit <= 0 || total <= limit) return 0;
    char t[32], l[32];
    format_bytes(t, sizeof t, total);
    format_bytes(l, sizeof l, limit);
    int order[BUDGET_MAX_PARTS];
    for (int i = 0; i < b->n; i++) order[i] = i;
    for (int i = 1; i < b->n; i++)  // largest first
        for (int j = i; j > 0 && b->parts[order[j]].bytes > b->parts[order[j - 1]].bytes; j--) {
            int k = order[j];
            order[j] = order[j - 1];
            order[j - 1] = k;
        }
    int len = snprintf(err, errlen, "needs %s of memory, %s available; largest:", t, l);
    for (int i = 0; i < b->n && i < 3 && len < errlen; i++) {
        const BudgetPart *p = &b->parts[order[i]];
        char s[32];
        format_bytes(s, sizeof s, p->bytes);
        len += snprintf(err + len, errlen - len, "%s %s %s (shrink: %s)", i ? ";" : "", p->name, s, p->shrink);
    }
    return -1;
}
