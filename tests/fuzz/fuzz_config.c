// The config loader: config_load_text with --set overrides, and the round trip every checkpoint
// relies on (load -> config_to_json -> config_from_json -> the same JSON, the same Config, no
// resume difference). The input is the config text, then up to 8 overrides, separated by NUL bytes.
// A refusal must be one line.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    fuzz_require(text != NULL, "memory");
    memcpy(text, data, size);
    text[size] = 0;
    const char *ov[8];
    int n_ov = 0;
    for (char *p = text + strlen(text); p < text + size && n_ov < 8; p += strlen(p)) ov[n_ov++] = ++p;

    Config a, b;
    char err[1024] = "";
    if (config_load_text(&a, text, "fuzz.json", ov, n_ov, err, sizeof err) != 0) {
        fuzz_require(err[0] && !strchr(err, '\n'), "a refusal is one line");
        free(text);
        return 0;
    }
    char *json = config_to_json(&a);
    fuzz_require(json != NULL, "config_to_json");
    if (config_from_json(&b, json, "round trip", err, sizeof err) != 0) {
        fprintf(stderr, "%s\n%s\n", err, json);
        fuzz_require(0, "the resolved config loads back");
    }
    char *again = config_to_json(&b);
    fuzz_require(again && !strcmp(json, again), "the JSON is the same the second time");
    fuzz_require(!memcmp(&a, &b, sizeof a), "the Config is the same after the round trip");
    fuzz_require(config_check_resume(&a, &b, NULL, err, sizeof err) == 0, "a round trip changes no key");
    FILE *null = fopen("/dev/null", "w");
    config_print(&a, null);
    fclose(null);
    free(json);
    free(again);
    free(text);
    return 0;
}
