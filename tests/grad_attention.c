// Gradient checks of attention_backward (double build): central differences of L = Σ out·G against the
// analytic dq, dk, dv and the parameter gradients of every position encoding and combination, plus
// the worked CoPE example of docs/cope.md §6-§7 reproduced number for number, and its kinks.
//
// Tolerances: in double, central differences with h = 1e-6 carry a rounding error of about
// eps·|L|/h ≈ 1e-16·10/1e-6 = 1e-9 and a truncation error h²·f'''/6 ≈ 1e-12, so a correct backward
// agrees to a few 1e-9 absolute (worst seen 6e-9); atol 3e-8 + rtol 1e-7 leaves a margin of ~5 while a
// wrong formula (a missing term, a wrong index, a wrong scale) misses by 1e-4 or more. Inputs are random and continuous, so no
// position lands on a kink (an integer) within h.
#include <stdint.h>

#include "attention.h"
#include "check.h"
#include "pe_fixture.h"

#define H_STEP 1e-6
#define ATOL 3e-8
#define RTOL 1e-7
#define DROP_KEY 0x5eedULL

typedef struct {
    int B, T, C, H;
    int rows;        // attention_set_block_rows
    int pad;         // some keys are padding (and so some queries)
    double p_drop;
    int rope;
    int cope, npos, nodiv, sep, unrot;
    int training;    // keep no positions, as training: rows past 32 keys stop at the clamp early
    const char *keep;  // pe.keep_gates (NULL: the default, auto, which keeps them at these sizes)
    int rel, rel_npos;
    const char *beyond;  // pe.rel_beyond (NULL: the default, refuse)
    const char *more;  // another kernel by name: pe.type itself when the fields above name none, else
                       // added to them (a combination no pe.type names: the loop composes any set)
    double qk_scale; // scale of q and k
} Spec;

typedef struct {
    Spec sp;
    AttnPE pe;
    PEFixture tables;
    AttnCache cache;
    double *cache_mem;
    double *q, *k, *v, *gk, *E, *R, *G, *out;
    uint8_t *pad;
} Ctx;

static double loss_fn(void *p) {
    Ctx *c = p;
    const Spec *s = &c->sp;
    attention_forward(c->out, &c->cache, c->q, c->k, c->v, c->pad, &c->pe, s->p_drop, DROP_KEY, s->B, s->T, s->C,
                      s->H);
    double L = 0;
    for (long i = 0; i < (long)s->B * s->T * s->C; i++) L += c->out[i] * c->G[i];
    return L;
}

static double *alloc_fill(long n, double scale, unsigned long long *st) {
    double *x = malloc(sizeof(double) * (n > 0 ? n : 1));
    check_fill(x, n, scale, st);
    return x;
}

// Gradient buffers start at 0.25 and the check subtracts it: the backward must accumulate (+=).
static double *grad_buf(long n) {
    double *x = malloc(sizeof(double) * (n > 0 ? n : 1));
    for (long i = 0; i < n; i++) x[i] = 0.25;
    return x;
}
static void unbias(double *x, long n) {
    for (long i = 0; i < n; i++) x[i] -= 0.25;
}

// The config's "pe" section for a Spec.
static void spec_pe_json(const Spec *s, char *out, size_t n) {
    char type[64] = "";
    const char *parts[] = {s->cope ? "cope" : NULL, s->rel ? "rel" : NULL, s->rope ? "rope" : NULL};
    for (int i = 0; i < 3; i++)
        if (parts[i]) snprintf(type + strlen(type), sizeof type - strlen(type), "%s%s", type[0] ? "+" : "", parts[i]);
    int len = snprintf(out, n, "{\"type\": \"%s\"", type[0] ? type : s->more ? s->more : "none");
    if (s->cope)
        len += snprintf(out + len, n - len, ", \"npos\": %d, \"nodiv\": %s, \"sep_keys\": %s", s->npos,
                        s->nodiv ? "true" : "false", s->sep ? "true" : "false");
    if (s->cope && s->rope && s->unrot) len += snprintf(out + len, n - len, ", \"rope_gates\": \"unrotated\"");
    if (s->keep) len += snprintf(out + len, n - len, ", \"keep_gates\": \"%s\"", s->keep);
    if (s->rel)
        len += snprintf(out + len, n - len, ", \"rel_max_distance\": %d, \"rel_beyond\": \"%s\"", s->rel_npos,
                        s->beyond ? s->beyond : "refuse");
    snprintf(out + len, n - len, "}");
}

static void run_case(const Spec *sp) {
    Ctx c = {.sp = *sp};
    const Spec *s = &c.sp;
    unsigned long long st = 12345 + (unsigned long long)s->T * 31 + s->cope * 7 + s->rel * 3 + s->rope;
    long BTC = (long)s->B * s->T * s->C;
    int dh = s->C / s->H;
    double qs = s->qk_scale > 0 ? s->qk_scale : 1.0;
    c.q = alloc_fill(BTC, qs, &st);
    c.k = alloc_fill(BTC, qs, &st);
    c.v = alloc_fill(BTC, 1.0, &st);
    c.G = alloc_fill(BTC, 1.0, &st);
    c.out = malloc(sizeof(double) * BTC);
    char pe_json[512];
    spec_pe_json(s, pe_json, sizeof pe_json);
    printf("     pe %s\n", pe_json);
    // tables uniform in [-1, 1); their gradients start at 0.25 (grad_buf)
    c.pe = pe_fixture(&c.tables, pe_json, dh, &st, 1.0, 0.25);
    c.pe.keep_positions = !s->training;
    if (s->more) c.pe.parts |= pe_bit(s->more);  // options of its own: none (the kernels added so have none)
    long nE, nR;
    double *dE, *dR;
    c.E = fixture_table(&c.tables, "cope_table", &dE, &nE);
    c.R = fixture_table(&c.tables, "rel_table", &dR, &nR);
    CHECK(!s->cope == !c.E && !s->rel == !c.R, "the encodings declared other tables than the Spec asks for");
    if (c.pe.own_keys) {
        c.gk = alloc_fill(BTC, qs, &st);
        c.pe.gate_keys = c.gk;
    }
    if (s->pad) {  // sequence b: keys (b + 2) mod T and T-1-b are padding (the last ones are pad queries)
        c.pad = calloc((size_t)s->B * s->T, 1);
        for (int b = 0; b < s->B; b++) {
            c.pad[(long)b * s->T + (b + 2) % s->T] = 1;
            c.pad[(long)b * s->T + s->T - 1 - b % s->T] = 1;
        }
    }
    char err[256];
    CHECK(attention_check_length(&c.pe, s->T, err, sizeof err) == 0, "check_length refused: %s", err);
    attention_set_block_rows(s->rows);
    long csize = attention_cache_size(&c.pe, s->B, s->T, s->C, s->H);
    c.cache_mem = malloc(sizeof(double) * csize);
    attention_cache_bind(&c.cache, c.cache_mem, &c.pe, s->B, s->T, s->C, s->H);
    if (s->cope)
        CHECK(!c.cache.near_gates == (s->keep && !strcmp(s->keep, "never")), "the cache %s gates, pe.keep_gates %s",
              c.cache.near_gates ? "keeps" : "keeps no", s->keep ? s->keep : "auto");

    double *dq = grad_buf(BTC), *dk = grad_buf(BTC), *dv = grad_buf(BTC);
    double *dgk = c.pe.own_keys ? grad_buf(BTC) : NULL;
    c.pe.dgate_keys = dgk;
    loss_fn(&c);
    if (s->cope && !s->training) {  // report how many positions are clamped: the small-npos cases need both kinds
        long clamped = 0, free_ = 0;
        for (long bh = 0; bh < (long)s->B * s->H; bh++)
            for (int i = 0; i < s->T; i++)
                for (int j = 0; j <= i; j++) {
                    double p = c.cache.pos[(bh * s->T + i) * s->T + j];
                    if (p > s->npos - 1) clamped++;
                    else free_++;
                }
        printf("     positions: %ld below the clamp, %ld clamped at npos-1 = %d\n", free_, clamped, s->npos - 1);
        if (s->npos > 1 && s->npos < s->T) CHECK(clamped > 0 && free_ > 0, "wanted clamped and unclamped positions");
    }
    if (s->cope && s->training) {  // blocks whose gates the backward takes from past key 0 (block_unclamped)
        int narrow = 0;
        for (long bh = 0; bh < (long)s->B * s->H; bh++)
            for (int i0 = 0; i0 < s->T; i0 += c.cache.rows) {
                int from = s->T;
                for (int i = i0; i < i0 + c.cache.rows && i < s->T; i++)
                    from = c.cache.unclamped[bh * s->T + i] < from ? c.cache.unclamped[bh * s->T + i] : from;
                narrow += from > 0;
            }
        printf("     %d row blocks take their gates from past key 0\n", narrow);
        if (s->keep) CHECK(narrow > 0, "no row block starts past key 0: the recomputed gate product is never narrow");
    }
    attention_backward(dq, dk, dv, c.G, &c.cache, c.q, c.k, c.v, c.pad, &c.pe, s->p_drop, DROP_KEY, s->B, s->T, s->C,
                       s->H);
    unbias(dq, BTC), unbias(dk, BTC), unbias(dv, BTC);
    if (dgk) unbias(dgk, BTC);
    if (dE) unbias(dE, nE);
    if (dR) unbias(dR, nR);
    check_gradient("dq", loss_fn, &c, c.q, dq, BTC, H_STEP, ATOL, RTOL);
    check_gradient("dk", loss_fn, &c, c.k, dk, BTC, H_STEP, ATOL, RTOL);
    check_gradient("dv", loss_fn, &c, c.v, dv, BTC, H_STEP, ATOL, RTOL);
    if (dgk) check_gradient("d gate_keys", loss_fn, &c, c.gk, dgk, BTC, H_STEP, ATOL, RTOL);
    if (dE) check_gradient("d cope_table", loss_fn, &c, c.E, dE, nE, H_STEP, ATOL, RTOL);
    if (dR) check_gradient("d rel_table", loss_fn, &c, c.R, dR, nR, H_STEP, ATOL, RTOL);
    attention_set_block_rows(0);
    free(c.q), free(c.k), free(c.v), free(c.G), free(c.out), free(c.gk), free(c.pad);
    free(c.cache_mem), free(dq), free(dk), free(dv), free(dgk);
    fixture_free(&c.tables, &c.pe);
}

// B=2 sequences of T=7, C=8 in H=2 heads (dh=4); row blocks of 3 so that several blocks, a partial
// last one and the triangle skipping are all exercised.
#define BASE .B = 2, .T = 7, .C = 8, .H = 2, .rows = 3

static void test_plain_causal(void) { run_case(&(Spec){BASE}); }
static void test_key_padding(void) { run_case(&(Spec){BASE, .pad = 1}); }
static void test_dropout(void) { run_case(&(Spec){BASE, .p_drop = 0.3}); }
static void test_rope(void) { run_case(&(Spec){BASE, .rope = 1}); }
static void test_rel_uncapped(void) { run_case(&(Spec){BASE, .rel = 1, .rel_npos = 9}); }
static void test_rel_capped_beyond_table(void) { run_case(&(Spec){BASE, .rel = 1, .rel_npos = 4, .beyond = "cap"}); }
static void test_rel_zero_beyond_table(void) { run_case(&(Spec){BASE, .rel = 1, .rel_npos = 4, .beyond = "zero", .pad = 1}); }
static void test_cope_default(void) { run_case(&(Spec){BASE, .cope = 1, .npos = 8}); }
static void test_cope_nodiv(void) { run_case(&(Spec){BASE, .cope = 1, .npos = 8, .nodiv = 1}); }
static void test_cope_sep_keys(void) { run_case(&(Spec){BASE, .cope = 1, .npos = 8, .sep = 1}); }
static void test_cope_rel(void) { run_case(&(Spec){BASE, .cope = 1, .npos = 8, .rel = 1, .rel_npos = 7}); }
static void test_cope_rope_rotated_gates(void) { run_case(&(Spec){BASE, .cope = 1, .npos = 8, .rope = 1}); }
static void test_cope_rope_unrotated_gates(void) { run_case(&(Spec){BASE, .cope = 1, .npos = 8, .rope = 1, .unrot = 1}); }
static void test_cope_sep_keys_rope(void) { run_case(&(Spec){BASE, .cope = 1, .npos = 8, .sep = 1, .rope = 1}); }
static void test_cope_sep_keys_rope_unrotated(void) {
    run_case(&(Spec){BASE, .cope = 1, .npos = 8, .sep = 1, .rope = 1, .unrot = 1});
}
// npos = 3: positions reach ~3.5, so a prefix of every long row is clamped at 2
static void test_alibi_cope_rel_padding_dropout(void) {
    run_case(&(Spec){BASE, .more = "alibi", .cope = 1, .npos = 3, .rel = 1, .rel_npos = 7, .pad = 1,
                     .p_drop = 0.2});
}
// Every registered kernel on its own, with padding: an encoding added to the registry is checked here
// without a line of its own (those with tables get theirs from the Spec fields above).
static void test_each_registered_kernel(void) {
    for (int i = 0; i < pe_n_kernels; i++) {
        const char *name = pe_kernels[i]->name;
        printf("     -- %s\n", name);
        Spec sp = {BASE, .pad = 1};
        if (!strcmp(name, "cope"))
            sp.cope = 1, sp.npos = 3;
        else if (!strcmp(name, "rel"))
            sp.rel = 1, sp.rel_npos = 7;
        else if (!strcmp(name, "rope"))
            sp.rope = 1;
        else
            sp.more = name;
        run_case(&sp);
    }
}
static void test_cope_clamped(void) { run_case(&(Spec){BASE, .cope = 1, .npos = 3}); }
static void test_cope_clamped_nodiv_padding(void) { run_case(&(Spec){BASE, .cope = 1, .npos = 3, .nodiv = 1, .pad = 1}); }
// the smallest tables a config allows: two CoPE positions (every position past 1 clamped at 1) and
// one relative column (every distance reuses it)
static void test_tiny_tables(void) {
    run_case(&(Spec){BASE, .cope = 1, .npos = 2, .rel = 1, .rel_npos = 1, .beyond = "cap", .pad = 1});
}
// everything at once, and one block of the default height over T = 70 (two blocks, the last partial)
static void test_all_together(void) {
    run_case(&(Spec){BASE, .cope = 1, .npos = 4, .sep = 1, .rel = 1, .rel_npos = 5, .beyond = "cap", .pad = 1,
                     .p_drop = 0.2});
}
static void test_default_blocks_long(void) {
    run_case(&(Spec){.B = 1, .T = 70, .C = 4, .H = 2, .cope = 1, .npos = 12, .rel = 1, .rel_npos = 70, .pad = 1,
                     .qk_scale = 2.0});
}
// as training runs it (no positions kept): the rows past 32 keys whose positions reach the clamp stop
// computing gates there, with padding, separate gate keys and the relative term beside
static void test_cope_stops_at_the_clamp(void) {
    run_case(&(Spec){.B = 1, .T = 70, .C = 4, .H = 2, .cope = 1, .npos = 12, .rel = 1, .rel_npos = 70, .pad = 1,
                     .qk_scale = 2.0, .training = 1});
    run_case(&(Spec){.B = 2, .T = 45, .C = 4, .H = 1, .cope = 1, .npos = 5, .sep = 1, .pad = 1, .nodiv = 1,
                     .training = 1});
}
// the backward computing the gates again from a product of its own (pe.keep_gates never, as auto does
// past T = 1024) from attention's q·k (rotated or not under RoPE) or separate keys (rotated or not),
// from the block's first unclamped key on: rows past 32 keys reach the clamp, so the second block's
// product starts past key 0
static void test_cope_recomputed_gates(void) {
    const Spec base = {.B = 2, .T = 45, .C = 8, .H = 2, .cope = 1, .npos = 5, .pad = 1, .training = 1, .qk_scale = 2.0,
                       .keep = "never"};
    Spec sp = base;
    run_case(&sp);
    sp = base, sp.nodiv = 1, sp.rope = 1;
    run_case(&sp);
    sp = base, sp.rope = 1, sp.unrot = 1;
    run_case(&sp);
    sp = base, sp.sep = 1;
    run_case(&sp);
    sp = base, sp.sep = 1, sp.rope = 1;
    run_case(&sp);
    sp = base, sp.sep = 1, sp.rope = 1, sp.unrot = 1;
    run_case(&sp);
}
// heads of 16 and 32 dimensions: α·V, dS·K, αᵀ·G and dSᵀ·Q run in matmul.c's narrow loop, not OpenBLAS
static void test_narrow_heads(void) {
    run_case(&(Spec){.B = 1, .T = 11, .C = 32, .H = 2, .rows = 5, .cope = 1, .npos = 6, .pad = 1, .p_drop = 0.2});
    run_case(&(Spec){.B = 2, .T = 9, .C = 32, .H = 1, .rows = 4, .rel = 1, .rel_npos = 9});
}

// ---- docs/cope.md §7, number for number ------------------------------------------
// Generated by the Python of docs/cope.md §7 (random.seed(0), L=6, d=4, P=3).
static const double appa_q[24] = {0.75337232374453156, -1.11726248376092, -0.54377155846273684, 0.29640285396852789, -0.81307911535045685, -0.057696018228057082, 0.14335718981988552, -0.66487937221679061, -1.0472298915674869, 0.1551101929992833, 0.79459976282815781, -0.51758530443800388, -0.26693438703653566, 1.3165374084661421, -0.44711181267861644, -0.41132533044218161, 1.9232954658388559, -1.2248660742989042, 0.63717267223484086, -1.6029188137211237, -0.47757019846856164, 1.2029447059855496, 0.97714913046133756, -0.7208961203163069};
static const double appa_k[24] = {-0.36295898409969296, 0.064186433928489134, -1.006482638179574, 0.44177600404879985, 1.7820618336561744, -1.0841931948410137, -1.5852264636426274, 0.23059499646486056, -0.095298648867658431, 1.4434639455356326, -0.12828974324560821, -0.040527770918978412, -0.15269911168100828, -0.79248499067864087, 0.53842398722030849, -1.0592659715776176, 0.93319211059082718, 0.0067009436016359312, 0.40290404510280386, -0.44221175769656462, -0.73615493426683243, 1.4402106883530397, 0.37483982580222336, 0.96560254349227592};
static const double appa_v[24] = {0.14969831823984756, 2.0892860218048379, 0.28600003869152968, -0.82384384362911767, 0.61480727756335141, 0.34023929268611708, -1.8569199787940474, -0.092723383249030344, 0.78415921694721635, 0.64093203209341787, -0.27154832665039103, -0.9700993720377582, 0.39303483944594236, -0.91666235667097196, 1.0597429299283652, -0.24501403727735474, -0.7398552027793549, -0.4541327359949332, -0.64871105045201327, -0.44857384998742317, -0.58910728304325699, -0.30320681869364224, 0.19117575938920839, 0.47751125823747587};
static const double appa_e[12] = {-1.1102432745276205, -0.95153793956597266, -0.42915250930145321, 0.063745592791558364, 0.097729371729000689, -2.0439815288694376, 1.7040273506937484, -0.89019401835232081, 1.816988861630594, -1.3522550174067383, -0.96417165111357606, -0.25143495478497419};
static const double appa_g[24] = {-0.22267511330489109, -0.77157832253123082, 0.73489519123990399, -1.802034113723568, 1.0550577298050254, -0.81797299709865312, 1.2515996545255019, -0.40871461617927402, -1.3990565518227993, 0.44911469839111096, 2.2301710075144929, -0.052446982250173801, 0.11148493528077183, -0.39937408717593759, -0.87652823507832034, -0.75132645353313787, -1.320716207334935, -1.4090316713215871, 0.070938016993631878, 1.6200914287046837, 0.52309563169252249, 0.47378781243500867, 0.24860219565352679, -0.86413948002237095};
static const double appa_div_out[24] = {0.14969831823984756, 2.0892860218048379, 0.28600003869152968, -0.82384384362911767, 0.31165328523672131, 1.4802528057979456, -0.46018326685822125, -0.56926136858107679, 0.60931467985847654, 0.97955307825791138, -0.27059487361929957, -0.85597884535526669, 0.67511062193148619, 0.41893479390996119, -0.11463776244372273, -0.78068457196610719, 0.46020950417594275, 0.11548628226705951, -1.0443097956942511, -0.20891312042277399, -0.14791449350938735, -0.061764955039797675, 0.062285498941584319, -0.11579145783282241};
static const double appa_div_dq[24] = {0, 0, 0, 0, -0.24456495747560694, 0.13930777030805766, -0.069163051560273511, 0.042820898488596812, -0.3103481068511712, 0.086927306502820614, -0.34744977267457994, 0.18527375029736459, 0.066282035175496384, 0.13574349540342664, -0.20839061037142775, 0.16718747505201181, -0.20466165293566196, 0.17479247078090587, 0.10692780114837119, -0.42090161800963555, 0.16149267009050103, -0.42689705547029166, 0.29722279228474185, 0.054085698592266487};
static const double appa_div_dk[24] = {-0.58554796672302944, 0.15574068627837373, 0.29606925580507104, -0.16074343008393405, -0.020016863633150583, 0.16583463740222099, -0.20532484314394658, 0.34222222188337442, -0.18445273268606371, 0.28980086639299207, 0.099697693422632808, -0.029246380734798363, 0.42848310142351181, -0.43023280063943187, 0.20955532051079112, -0.27819664622669432, 0.20890372719657049, -0.15551016116247338, 0.040826394524568543, -0.14613463953537562, 0.064633075710728946, -0.16280332505484607, -0.1322447546607918, 0.097564156376147668};
static const double appa_div_dv[24] = {0.090538938407978969, -1.2438378088932709, 2.0875867654238625, -2.0959504551419519, -0.60426488912177923, -1.1847489324687479, 0.62566087938077797, 0.85160669623050822, -0.77845924482202022, 0.06276851830469829, 0.90017272044282337, -0.69800495280176345, -0.18210456829636099, -0.29465958415226551, -0.10883419692934157, 0.089724033451675927, -0.023452783888219308, -0.036421963881129435, 0.038686800882087445, -0.0013230600365086859, 0.24493297203609504, 0.22184520378942685, 0.11640486164852737, -0.40462247870580081};
static const double appa_div_de[12] = {0.23541280793794303, 0.15433618263921645, -0.38974899057715945, -0.16459316450473704, -0.25704350917148794, 0.42163667367622504, -0.12399331822084059, -0.021171684338262775, 0.14516500255910333, 0.13546451898923548, -0.18108586292457041, 0.04562134393533504};
static const double appa_nodiv_out[24] = {0.14969831823984756, 2.0892860218048379, 0.28600003869152968, -0.82384384362911767, 0.3314951755538082, 1.4056371858169623, -0.55160181103566108, -0.5380712319633264, 0.66258862129024498, 0.86152995493741069, -0.30834928415181689, -0.87263994497633857, 0.70080552386289874, 0.35035427678920283, -0.069137694614458095, -0.80507358823651287, 0.55559015722144389, 0.2977578326798116, -1.3778419210754071, -0.17820510798469308, -0.30969630144015892, -0.15855537083219354, 0.093365295428373671, 0.076147884929650494};
static const double appa_nodiv_dq[24] = {0, 0, 0, 0, -0.24256894163367909, 0.14743571246152501, -0.21810684145796547, 0.063205932563021011, -0.19788895355545502, 0.17320709395976214, -0.45046309155658448, 0.19059295660356079, 0.064539721196994582, 0.10086366535816566, -0.30519758194426061, 0.27868947889758533, -0.016062663060494274, 0.034614946801973689, -0.063005874070279466, -0.30104874402067211, 0.21468986142607094, -0.6725810151809567, 0.58592768783889126, 0.20795849047083242};
static const double appa_nodiv_dk[24] = {-0.52317895185479368, 0.1650314016998895, 0.21695972426838739, -0.11149147624170205, 0.15778280915592491, 0.013340204867493658, -0.087097540917362076, 0.14472063015939179, -0.28416960453149653, 0.22165131385212711, 0.17049467604823815, -0.049032772083273383, 0.34173034237907879, -0.43948365997192879, 0.2075745670135786, -0.17313029080259218, 0.11846195565638619, -0.082706940419884162, 0.030070265489561779, -0.089686617252115755, 0.034338290853645398, -0.086494227084196892, -0.070259055436803872, 0.051833930873547727};
static const double appa_nodiv_dv[24] = {0.13380291893828236, -1.2526950883106496, 1.8808382905900023, -2.0117611414473782, -0.75241546705018603, -1.4189437275691448, 0.70456639300429402, 1.101016289067192, -0.93209941205385871, 0.045387650179311081, 1.0248092248492964, -0.68366206563819543, -0.074449440646691789, -0.18328141295343806, -0.13660794123485498, -0.041723048703132065, 0.040755253075011613, 0.034138255167569589, 0.028479960956995426, -0.074651907213863306, 0.33159657205313675, 0.30033975618506237, 0.15759190268300435, -0.54778834306846369};
static const double appa_nodiv_de[12] = {0.35407620145516683, 0.06943023221444676, -0.42350643366961294, -0.28451073539939975, -0.29877520272015978, 0.58328593811955909, -0.1910295314812025, -0.097035720434077821, 0.28806525191528048, 0.26889486042550897, -0.16013395547488288, -0.10876090495062662};
static const double kink_q[24] = {0.75337232374453156, -1.11726248376092, 0, 0, -0.81307911535045685, -0.057696018228057082, 0, 0, -1.0472298915674869, 0.1551101929992833, 0, 0, -0.26693438703653566, 1.3165374084661421, 0, 0, 1.9232954658388559, -1.2248660742989042, 0, 0, -0.47757019846856164, 1.2029447059855496, 0, 0};
static const double kink_k[24] = {0, 0, -1.006482638179574, 0.44177600404879985, 0, 0, -1.5852264636426274, 0.23059499646486056, 0, 0, -0.12828974324560821, -0.040527770918978412, 0, 0, 0.53842398722030849, -1.0592659715776176, 0, 0, 0.40290404510280386, -0.44221175769656462, 0, 0, 0.37483982580222336, 0.96560254349227592};
static const double kink_dq[24] = {0, 0, 0, 0, 0.010506528501314949, 0.0022497765565027226, -0.098550848675382219, 0.054152641409774611, 0.11209534224001756, -0.48719174589064362, 1.2346574180979604, 0.18851885413265843, 0.019792270043331867, -0.033318147708179827, -0.30611061730597133, 0.22688539064931157, -0.091362990060176369, 0.34085041040732605, -0.2168881817459678, -0.32866073551878144, 0.087612009895963114, -0.31955305978207277, 0.10498174280184763, 0.048586968732883706};
static const double kink_dk[24] = {-1.1880880964278351, 0.49691079535361382, 0, 0, 1.0832885937020698, -0.23292895546973552, 0, 0, -0.245738185895154, 0.22904869632899616, 0, 0, 0.16410366090159353, -0.29572296620399402, 0, 0, 0.16623612613138111, -0.15551010907080079, 0, 0, 0.059200847806736859, -0.14912016429697389, 0, 0};
static const double kink_dv[24] = {-0.53557478678481307, -1.5632058856736777, 1.9509295317594488, -1.5504302617792407, -0.38242379302693214, -0.8106983173335095, 1.3104237152609857, 0.1719615913309982, -0.62764371334030133, -0.1567763504292892, 0.52157803193429275, -0.12156626642994163, 0.041877556394403541, -0.15973134200063316, -0.28172511184452376, -0.3124430260244514, 0.087710203874498696, 0.067500098068666498, 0.080889186787450287, -0.17641611099588833, 0.16324495719883902, 0.14785723006715401, 0.077582476951083099, -0.26967614310531712};
static const double kink_de[12] = {0.1526277726110821, 0.46865972580171572, -0.62128749841279829, -0.21188474163038229, -0.22172383100470278, 0.43360857263508529, 0, 0, 0, 0, 0, 0};

// One head, B=1, T=6, C=dh=4, npos=3, no padding: the setting of docs/cope.md §7. Agreement is to rounding
// (different summation orders in double): atol 1e-12.
static void reference_case(const double *qv, const double *kv, int nodiv, const double *want_out, const double *want_dq,
                           const double *want_dk, const double *want_dv, const double *want_de, int kink) {
    enum { T = 6, C = 4, P = 3 };
    double q[T * C], k[T * C], v[T * C], G[T * C], out[T * C];
    double dq[T * C] = {0}, dk[T * C] = {0}, dv[T * C] = {0};
    memcpy(q, qv, sizeof q), memcpy(k, kv, sizeof k), memcpy(v, appa_v, sizeof v), memcpy(G, appa_g, sizeof G);
    PEFixture tables;
    unsigned long long st = 1;
    AttnPE pe = pe_fixture(&tables, nodiv ? "{\"type\": \"cope\", \"npos\": 3, \"nodiv\": true}" : "{\"type\": \"cope\", \"npos\": 3}",
                           C, &st, 1.0, 0.0);
    pe.keep_positions = 1;
    double *dE;
    long nE;
    double *E = fixture_table(&tables, "cope_table", &dE, &nE);
    CHECK(nE == C * P, "the CoPE table has %ld entries, want %d", nE, C * P);
    memcpy(E, appa_e, sizeof appa_e);
    AttnCache cache;
    double *mem = malloc(sizeof(double) * attention_cache_size(&pe, 1, T, C, 1));
    attention_cache_bind(&cache, mem, &pe, 1, T, C, 1);
    attention_forward(out, &cache, q, k, v, NULL, &pe, 0, 0, 1, T, C, 1);
    if (want_out) check_close("out", out, want_out, T * C, 1e-12, 1e-10);
    if (kink) {  // the case must sit on the kinks: integer positions below the clamp, and clamped ones
        int integer = 0, clamped = 0;
        for (int i = 0; i < T; i++)
            for (int j = 0; j <= i; j++) {
                double p = cache.pos[i * T + j];
                if (p > P - 1) clamped++;
                else if (p == floor(p)) integer++;
            }
        printf("     %d integer positions below the clamp, %d clamped\n", integer, clamped);
        CHECK(integer >= 3 && clamped >= 3, "the kink case lost its kinks");
    }
    attention_backward(dq, dk, dv, G, &cache, q, k, v, NULL, &pe, 0, 0, 1, T, C, 1);
    check_close("dq", dq, want_dq, T * C, 1e-12, 1e-10);
    check_close("dk", dk, want_dk, T * C, 1e-12, 1e-10);
    check_close("dv", dv, want_dv, T * C, 1e-12, 1e-10);
    check_close("d cope_table", dE, want_de, C * P, 1e-12, 1e-10);
    free(mem);
    fixture_free(&tables, &pe);
}

static void test_reference_appendix_a_default(void) {
    reference_case(appa_q, appa_k, 0, appa_div_out, appa_div_dq, appa_div_dk, appa_div_dv, appa_div_de, 0);
}
static void test_reference_appendix_a_nodiv(void) {
    reference_case(appa_q, appa_k, 1, appa_nodiv_out, appa_nodiv_dq, appa_nodiv_dk, appa_nodiv_dv, appa_nodiv_de, 0);
}
// The kinks on their own: with q·k = 0 every gate is 1/2 and p_ij = (i-j+1)/2 is an integer at odd
// i-j and clamped from i-j = 3. There the interpolant has a kink (its slope jumps from
// Z[f]-Z[f-1] to Z[f+1]-Z[f]) or is flat (clamp); the official code (docs/cope.md §5.4-§5.5) passes no gradient to the position at
// either (u = f gives Z[u]-Z[f] = 0), which a central difference would not reproduce, so the check
// is against the reference's own numbers.
static void test_reference_kinks(void) {
    reference_case(kink_q, kink_k, 0, NULL, kink_dq, kink_dk, kink_dv, kink_de, 1);
}

int main(void) {
    RUN(test_reference_appendix_a_default);
    RUN(test_reference_appendix_a_nodiv);
    RUN(test_reference_kinks);
    RUN(test_plain_causal);
    RUN(test_key_padding);
    RUN(test_dropout);
    RUN(test_rope);
    RUN(test_rel_uncapped);
    RUN(test_rel_capped_beyond_table);
    RUN(test_rel_zero_beyond_table);
    RUN(test_cope_default);
    RUN(test_cope_nodiv);
    RUN(test_cope_sep_keys);
    RUN(test_cope_rel);
    RUN(test_cope_rope_rotated_gates);
    RUN(test_cope_rope_unrotated_gates);
    RUN(test_cope_sep_keys_rope);
    RUN(test_cope_sep_keys_rope_unrotated);
    RUN(test_cope_clamped);
    RUN(test_each_registered_kernel);
    RUN(test_alibi_cope_rel_padding_dropout);
    RUN(test_cope_clamped_nodiv_padding);
    RUN(test_tiny_tables);
    RUN(test_all_together);
    RUN(test_default_blocks_long);
    RUN(test_cope_stops_at_the_clamp);
    RUN(test_cope_recomputed_gates);
    RUN(test_narrow_heads);
    return check_summary("grad_attention");
}
