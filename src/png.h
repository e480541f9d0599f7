// A minimal PNG writer (8-bit grayscale or RGB, no interlace, filter 0 on every row, zlib for the
// image data, a CRC per chunk) and heat maps of matrices: enough to look at attention maps, CoPE
// gates and positions without any library but zlib.
//
//   file  = signature (8 bytes) IHDR IDAT IEND
//   chunk = u32 length (big-endian), 4-byte type, data, u32 CRC32 over type and data
//   IDAT  = zlib stream of the rows, each row a filter byte (0 = none) then width·channels bytes
#ifndef PNG_H
#define PNG_H

#include <stddef.h>
#include <stdint.h>

// The PNG image of pixels (height rows of width·channels bytes; channels 1 = gray, 3 = RGB) in a
// malloc'd buffer of *size bytes. NULL when out of memory or the arguments are invalid.
unsigned char *png_encode(const uint8_t *pixels, int width, int height, int channels, size_t *size);

// png_encode written to path. Returns 0, or -1 with err naming the file.
int png_write(const char *path, const uint8_t *pixels, int width, int height, int channels, char *err, int errlen);

// The colour of t in [0, 1] (clamped) on a perceptually ordered map (viridis, interpolated between
// 9 samples): dark blue at 0, green in the middle, yellow at 1.
void png_colormap(double t, uint8_t rgb[3]);

// A heat map of m (rows × cols, row-major) as an RGB PNG: value v gets the colour of
// (v - lo) / (hi - lo); NaN marks a cell that does not exist (e.g. keys after the query in a causal
// map) and is drawn light grey. Each cell is a scale × scale block of pixels (scale ≥ 1), so a
// 64 × 64 map is visible. Returns 0, or -1 with err.
int png_heatmap(const char *path, const float *m, int rows, int cols, double lo, double hi, int scale, char *err,
                int errlen);

#endif
