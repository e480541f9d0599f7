#include "png.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

// Appends one chunk at out (which has room): length, type, data, CRC over type and data.
static size_t put_chunk(unsigned char *out, const char type[4], const unsigned char *data, uint32_t len) {
    put_be32(out, len);
    memcpy(out + 4, type, 4);
    if (len) memcpy(out + 8, data, len);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, out + 4, 4 + len);
    put_be32(out + 8 + len, (uint32_t)crc);
    return 12 + (size_t)len;
}

unsigned char *png_encode(const uint8_t *pixels, int width, int height, int channels, size_t *size) {
    if (!pixels || width < 1 || height < 1 || (channels != 1 && channels != 3)) return NULL;
    size_t stride = (size_t)width * channels, raw_len = (stride + 1) * (size_t)height;
    if (raw_len > 0xffffffffu / 2) return NULL;  // keeps every length a u32 (a 30k × 30k RGB map)
    unsigned char *raw = malloc(raw_len);
    if (!raw) return NULL;
    for (int y = 0; y < height; y++) {
        raw[y * (stride + 1)] = 0;  // filter type 0: the row as it is
        memcpy(raw + y * (stride + 1) + 1, pixels + y * stride, stride);
    }
    uLongf zlen = compressBound((uLong)raw_len);
    unsigned char *out = malloc(8 + 25 + 12 + zlen + 12);
    unsigned char *z = malloc(zlen);
    if (!out || !z || compress2(z, &zlen, raw, (uLong)raw_len, 6) != Z_OK) {
        free(raw);
        free(out);
        free(z);
        return NULL;
    }
    free(raw);
    static const unsigned char signature[8] = {137, 'P', 'N', 'G', '\r', '\n', 26, '\n'};
    memcpy(out, signature, 8);
    size_t n = 8;
    unsigned char ihdr[13];
    put_be32(ihdr, (uint32_t)width);
    put_be32(ihdr + 4, (uint32_t)height);
    ihdr[8] = 8;                        // bits per sample
    ihdr[9] = channels == 1 ? 0 : 2;    // colour type: gray, truecolour
    ihdr[10] = ihdr[11] = ihdr[12] = 0; // deflate, adaptive filtering (method 0), no interlace
    n += put_chunk(out + n, "IHDR", ihdr, 13);
    n += put_chunk(out + n, "IDAT", z, (uint32_t)zlen);
    n += put_chunk(out + n, "IEND", NULL, 0);
    free(z);
    *size = n;
    return out;
}

int png_write(const char *path, const uint8_t *pixels, int width, int height, int channels, char *err, int errlen) {
    size_t size;
    unsigned char *png = png_encode(pixels, width, height, channels, &size);
    if (!png) {
        snprintf(err, errlen, "%s: cannot encode a %d × %d PNG with %d channels (out of memory or invalid size)", path,
                 width, height, channels);
        return -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        free(png);
        return -1;
    }
    int ok = fwrite(png, 1, size, f) == size;
    ok = (fclose(f) == 0) && ok;
    free(png);
    if (!ok) {
        snprintf(err, errlen, "%s: write error (disk full?)", path);
        return -1;
    }
    return 0;
}

void png_colormap(double t, uint8_t rgb[3]) {
    static const uint8_t viridis[9][3] = {
        {68, 1, 84},   {71, 45, 123}, {59, 82, 139},  {44, 114, 142}, {33, 145, 140},
        {40, 174, 128}, {94, 201, 98}, {173, 220, 48}, {253, 231, 37},
    };
    if (!(t > 0)) t = 0;  // NaN too
    if (t > 1) t = 1;
    double x = t * 8;
    int i = (int)x;
    if (i > 7) i = 7;
    double w = x - i;
    for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)lround((1 - w) * viridis[i][c] + w * viridis[i + 1][c]);
}

int png_heatmap(const char *path, const float *m, int rows, int cols, double lo, double hi, int scale, char *err,
                int errlen) {
    if (rows < 1 || cols < 1 || scale < 1) {
        snprintf(err, errlen, "%s: a heat map needs rows, cols and scale ≥ 1 (got %d, %d, %d)", path, rows, cols, scale);
        return -1;
    }
    long w = (long)cols * scale, h = (long)rows * scale;
    if (w > 30000 || h > 30000) {
        snprintf(err, errlen, "%s: a %ld × %ld image is too large; use a smaller scale", path, w, h);
        return -1;
    }
    uint8_t *px = malloc((size_t)w * (size_t)h * 3);
    if (!px) {
        snprintf(err, errlen, "%s: out of memory for a %ld × %ld image", path, w, h);
        return -1;
    }
    double range = hi > lo ? hi - lo : 1;
    for (int r = 0; r < rows; r++) {
        uint8_t *line = px + (size_t)r * scale * w * 3;
        for (int c = 0; c < cols; c++) {
            float v = m[(long)r * cols + c];
            uint8_t rgb[3] = {224, 224, 224};
            if (!isnan(v)) png_colormap((v - lo) / range, rgb);
            for (int k = 0; k < scale; k++) memcpy(line + ((size_t)c * scale + k) * 3, rgb, 3);
        }
        for (int k = 1; k < scale; k++) memcpy(line + (size_t)k * w * 3, line, (size_t)w * 3);
    }
    int rc = png_write(path, px, (int)w, (int)h, 3, err, errlen);
    free(px);
    return rc;
}
