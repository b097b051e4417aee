/* NVML, loaded at run time with dlopen (no build dependency on the
 * driver's library or header): the GPU's energy counter and power, its
 * clocks, temperature and power limits, read only. Nothing here changes a
 * GPU setting. */
#ifndef CALIB_NVML_H
#define CALIB_NVML_H

#include "calib/table_writer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct calib_nvml calib_nvml;

/* How power is read, best first. */
typedef enum calib_power_method {
    CALIB_POWER_ENERGY_COUNTER,  /* nvmlDeviceGetTotalEnergyConsumption, mJ */
    CALIB_POWER_INSTANT,         /* field NVML_FI_DEV_POWER_INSTANT */
    CALIB_POWER_AVERAGE,         /* field NVML_FI_DEV_POWER_AVERAGE, else GetPowerUsage */
    CALIB_POWER_NONE
} calib_power_method;

const char *calib_power_method_name(calib_power_method m);

/* Opens NVML and finds the device with this PCI bus id ("0000:3B:00.0").
 * NULL when NVML is missing or fails; why says what happened (every
 * library tried, and how it failed). Tries calib_nvml_candidates. */
calib_nvml *calib_nvml_open(const char *pci_bus_id, char *why, size_t why_size);

/* The libraries calib_nvml_open tries, in order: env_path (the
 * SERVESIM_NVML_LIB variable, a file) if set; libnvidia-ml.so.1 by name
 * (the dynamic loader's search path); then libnvidia-ml.so.1 in each of
 * the folders where drivers put it when the loader's cache misses them
 * (multiarch and lib64 folders, container-toolkit and WSL mounts), never
 * the CUDA toolkit's stub library. Fills out[0..max-1]; returns the count. */
#define CALIB_NVML_PATH_MAX 256
int calib_nvml_candidates(const char *env_path, char out[][CALIB_NVML_PATH_MAX], int max);
/* calib_nvml_open over an explicit list: the first library that loads and
 * whose nvmlInit_v2 succeeds is used (a stub library fails its init and
 * is passed over). */
calib_nvml *calib_nvml_open_from(const char *pci_bus_id, const char *const *libs, int n_libs,
                                 char *why, size_t why_size);
/* The library the handle was loaded from. */
const char *calib_nvml_library(const calib_nvml *n);
void calib_nvml_close(calib_nvml *n);

/* The best method this device supports (probed once at open). */
calib_power_method calib_nvml_method(const calib_nvml *n);

/* Total energy since the driver loaded, millijoules. 0 on success. */
int calib_nvml_energy_mj(calib_nvml *n, unsigned long long *mj);
/* Power now by the given method (INSTANT or AVERAGE), watts. 0 on success. */
int calib_nvml_power_w(calib_nvml *n, calib_power_method m, double *w);
/* Clocks, temperature, limits, power and throttle reasons now. */
void calib_nvml_state(calib_nvml *n, calib_gpu_state *out);
/* Throttle ("clocks event") reasons now; -1 unknown. */
long long calib_nvml_reasons(calib_nvml *n);
/* Reasons that mean the clocks were held back: power cap, thermal,
 * hardware slowdown, power brake. */
#define CALIB_THROTTLE_MASK (0x4LL | 0x8LL | 0x20LL | 0x40LL | 0x80LL)
void calib_nvml_driver_version(calib_nvml *n, char *out, size_t size);
void calib_nvml_uuid(calib_nvml *n, char *out, size_t size);

#ifdef __cplusplus
}
#endif

#endif
