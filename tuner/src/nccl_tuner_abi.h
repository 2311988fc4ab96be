// The binary interface between NCCL and a tuner plugin, declared here because NCCL does not
// install its plugin headers. Written from NCCL's documented interface, not copied:
//   - ncclTuner_v5: NCCL 2.28.3 to 2.29.x (src/include/plugin/tuner/tuner_v5.h,
//     src/include/plugin/nccl_tuner.h, src/include/nccl_common.h at tag v2.28.9-1; this machine's
//     CUDA toolkit ships nccl.h 2.28.9);
//   - ncclTuner_v6: NCCL 2.30 and later (tuner_v6.h at tag v2.30.3-1): v5 plus an optional
//     getChunkSize callback that may be null.
// NCCL looks up the symbol "ncclTunerPlugin_v6" first, then "ncclTunerPlugin_v5", then older ones.
//
// The cost table: NCCL builds a contiguous `float table[NCCL_NUM_ALGORITHMS][NCCL_NUM_PROTOCOLS]`
// and passes it cast to `float**` (enqueue.cc, getAlgoInfo). It is NOT an array of row pointers:
// cell [a][p] is ((float*)collCostTable)[a * numProto + p]. A cell NCCL cannot use holds
// NCCL_ALGO_PROTO_IGNORE (-1.0); NCCL then picks the smallest non-negative cell. nChannels
// arrives as 0, meaning "NCCL's own count".
//
// Only the layout matters to the loader; names follow NCCL's so the declarations can be checked
// against its headers line by line.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

// ncclResult_t (nccl.h): the tuner only ever returns ncclSuccess.
typedef enum { ncclSuccess = 0, ncclInternalError = 3 } ncclResult_t;

// Logger levels and subsystems (nccl_common.h).
typedef enum {
  NCCL_LOG_NONE = 0,
  NCCL_LOG_VERSION = 1,
  NCCL_LOG_WARN = 2,
  NCCL_LOG_INFO = 3,
  NCCL_LOG_ABORT = 4,
  NCCL_LOG_TRACE = 5
} ncclDebugLogLevel;
enum : unsigned long { NCCL_INIT = 0x1, NCCL_TUNING = 0x40 };

// printf-style; NCCL passes its own ncclDebugLog, which filters by NCCL_DEBUG.
typedef void (*ncclDebugLogger_t)(ncclDebugLogLevel level, unsigned long flags, const char* file,
                                  int line, const char* fmt, ...);

// Collective kinds (nccl_common.h). NCCL 2.28 goes on to 10 (gather), 2.30 further; an int-sized
// enum takes any of them, and the tuner matches only the first five.
typedef enum : int {
  ncclFuncBroadcast = 0,
  ncclFuncReduce = 1,
  ncclFuncAllGather = 2,
  ncclFuncReduceScatter = 3,
  ncclFuncAllReduce = 4,
} ncclFunc_t;

#define NCCL_NUM_ALGORITHMS_V5 7  // tree, ring, collnet direct, collnet chain, nvls, nvls tree, pat
#define NCCL_NUM_PROTOCOLS_V5 3   // LL, LL128, Simple
#define NCCL_NUM_HW_LINKS_V5 3    // NVLink, PCI, network
#define NCCL_NUM_COMPCAPS_V5 4    // Volta, Ampere, Hopper, Blackwell
#define NCCL_NUM_TUNING_SCALES_V5 3  // 1, 2, 4 nodes
#define NCCL_ALGO_PROTO_IGNORE -1.0f

typedef struct {
  int nNvlDomains;
  int minRanksPerNvlDomain;
  int maxRanksPerNvlDomain;
} ncclNvlDomainInfo_v5_t;

// NCCL's tuning constants, which a plugin may rewrite in init. basin leaves them alone; the layout
// is declared in full so the pointer's type is honest.
typedef struct {
  double baseLatencies[NCCL_NUM_ALGORITHMS_V5][NCCL_NUM_PROTOCOLS_V5];
  double hwLatencies[NCCL_NUM_HW_LINKS_V5][NCCL_NUM_ALGORITHMS_V5][NCCL_NUM_PROTOCOLS_V5];
  double llMaxBws[NCCL_NUM_COMPCAPS_V5][NCCL_NUM_TUNING_SCALES_V5];
  double perChMaxRingLL128Bws[NCCL_NUM_COMPCAPS_V5][NCCL_NUM_TUNING_SCALES_V5];
  double perChMaxTreeLL128Bws[NCCL_NUM_COMPCAPS_V5][NCCL_NUM_TUNING_SCALES_V5];
  double perChMaxTreeBws[NCCL_NUM_COMPCAPS_V5][NCCL_NUM_TUNING_SCALES_V5];
  double perChMaxNVLSTreeBws[NCCL_NUM_COMPCAPS_V5][NCCL_NUM_TUNING_SCALES_V5];
} ncclTunerConstants_v5_t;

typedef ncclResult_t (*ncclTunerInit_v5_fn)(void** context, uint64_t commId, size_t nRanks,
                                            size_t nNodes, ncclDebugLogger_t logFunction,
                                            ncclNvlDomainInfo_v5_t* nvlDomainInfo,
                                            ncclTunerConstants_v5_t* constants);
typedef ncclResult_t (*ncclTunerGetCollInfo_v5_fn)(void* context, ncclFunc_t collType,
                                                   size_t nBytes, int numPipeOps,
                                                   float** collCostTable, int numAlgo, int numProto,
                                                   int regBuff, int* nChannels);
typedef ncclResult_t (*ncclTunerFinalize_v5_fn)(void* context);
typedef ncclResult_t (*ncclTunerGetChunkSize_v6_fn)(void* context, ncclFunc_t collType,
                                                    size_t nBytes, int algo, int proto,
                                                    int nChannels, size_t* chunkSize);

typedef struct {
  const char* name;
  ncclTunerInit_v5_fn init;
  ncclTunerGetCollInfo_v5_fn getCollInfo;
  ncclTunerFinalize_v5_fn finalize;
} ncclTuner_v5_t;

typedef struct {
  const char* name;
  ncclTunerInit_v5_fn init;  // v6 keeps v5's constants and NVLink domain types
  ncclTunerGetCollInfo_v5_fn getCollInfo;
  ncclTunerFinalize_v5_fn finalize;
  ncclTunerGetChunkSize_v6_fn getChunkSize;  // optional: null keeps NCCL's chunk size
} ncclTuner_v6_t;

}  // extern "C"
