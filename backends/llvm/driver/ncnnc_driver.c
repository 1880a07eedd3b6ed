/*
 * ncnnc_driver.c: run a model compiled by `ncnnc compile --target NAME` on raw float32 files.
 *
 * What an application does with model.o + model.h: allocate the workspace once (64-byte aligned),
 * then call model_run once per image with pointers to its input and output buffers.
 *
 *   cc -O2 ncnnc_driver.c model.o -lm -pthread -o driver      (a prefix other than "model":
 *       -DNCNNC_PREFIX=net -DNCNNC_PREFIX_UPPER=NET -DNCNNC_HEADER='"net.h"')
 *   ./driver COUNT IN_0.raw ... IN_{n-1}.raw OUT_0.raw ... OUT_{m-1}.raw
 *
 * IN_i holds COUNT images of input i back to back (each MODEL_INPUTi_SIZE floats, c,h,w order);
 * OUT_j receives COUNT results of output j the same way.  $NCNNC_THREADS threads share each run
 * (default 1).  Exit status 0 on success, 1 on an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef NCNNC_PREFIX
#define NCNNC_PREFIX model
#define NCNNC_PREFIX_UPPER MODEL
#endif
#ifndef NCNNC_HEADER
#define NCNNC_HEADER "model.h"
#endif
#include NCNNC_HEADER

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define API(name) CAT(NCNNC_PREFIX, name)       /* model_run, model_workspace_size */
#define DEF(name) CAT(NCNNC_PREFIX_UPPER, name) /* MODEL_NUM_INPUTS, ... */

#define NUM_IN DEF(_NUM_INPUTS)
#define NUM_OUT DEF(_NUM_OUTPUTS)

static const size_t in_sizes[NUM_IN > 0 ? NUM_IN : 1] = DEF(_INPUT_SIZES);
static const size_t out_sizes[NUM_OUT > 0 ? NUM_OUT : 1] = DEF(_OUTPUT_SIZES);

static void *alloc64(size_t bytes) {
    /* aligned_alloc wants a multiple of the alignment; never ask for 0 bytes */
    size_t rounded = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, rounded ? rounded : 64);
}

int main(int argc, char **argv) {
    if (argc != 2 + NUM_IN + NUM_OUT) {
        fprintf(stderr, "usage: %s COUNT IN_FILE x %d OUT_FILE x %d\n", argv[0], NUM_IN, NUM_OUT);
        return 1;
    }
    long count = strtol(argv[1], NULL, 10);
    if (count < 0) {
        fprintf(stderr, "bad COUNT %s\n", argv[1]);
        return 1;
    }
    void *workspace = alloc64(API(_workspace_size)());
    float *inputs[NUM_IN > 0 ? NUM_IN : 1];
    float *outputs[NUM_OUT > 0 ? NUM_OUT : 1];
    FILE *in_files[NUM_IN > 0 ? NUM_IN : 1];
    FILE *out_files[NUM_OUT > 0 ? NUM_OUT : 1];
    if (!workspace) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (int i = 0; i < NUM_IN; i++) {
        inputs[i] = alloc64(in_sizes[i] * sizeof(float));
        in_files[i] = fopen(argv[2 + i], "rb");
        if (!inputs[i] || !in_files[i]) {
            fprintf(stderr, "cannot open %s\n", argv[2 + i]);
            return 1;
        }
    }
    for (int j = 0; j < NUM_OUT; j++) {
        outputs[j] = alloc64(out_sizes[j] * sizeof(float));
        out_files[j] = fopen(argv[2 + NUM_IN + j], "wb");
        if (!outputs[j] || !out_files[j]) {
            fprintf(stderr, "cannot create %s\n", argv[2 + NUM_IN + j]);
            return 1;
        }
    }
    const char *threads_env = getenv("NCNNC_THREADS");
    int threads = threads_env ? atoi(threads_env) : 1;
    for (long n = 0; n < count; n++) {
        for (int i = 0; i < NUM_IN; i++) {
            if (fread(inputs[i], sizeof(float), in_sizes[i], in_files[i]) != in_sizes[i]) {
                fprintf(stderr, "%s: short read at image %ld\n", argv[2 + i], n);
                return 1;
            }
        }
        API(_run)((const float *const *)inputs, outputs, workspace, threads);
        for (int j = 0; j < NUM_OUT; j++) {
            if (fwrite(outputs[j], sizeof(float), out_sizes[j], out_files[j]) != out_sizes[j]) {
                fprintf(stderr, "%s: write failed\n", argv[2 + NUM_IN + j]);
                return 1;
            }
        }
    }
    for (int i = 0; i < NUM_IN; i++) {
        fclose(in_files[i]);
        free(inputs[i]);
    }
    for (int j = 0; j < NUM_OUT; j++) {
        if (fclose(out_files[j]) != 0) {
            fprintf(stderr, "%s: write failed\n", argv[2 + NUM_IN + j]);
            return 1;
        }
        free(outputs[j]);
    }
    free(workspace);
    return 0;
}
