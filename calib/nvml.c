/* NVML through dlopen (see nvml.h).
 *
 * Design. The few NVML entry points used are declared here with their
 * published signatures and looked up by name in libnvidia-ml.so.1, so the
 * program builds without the driver's header or library and runs (without
 * energy) where NVML is absent. The library is looked up by name first,
 * then by path in the folders drivers install it to, because a GPU machine
 * whose loader cache lacks the driver's folder (containers that mount the
 * driver late, WSL) would otherwise run without energy; every library
 * tried is named in the message when none works. Only getters are used.
 * The power method is
 * probed once: the total-energy counter when it answers and is non-zero,
 * else the instant-power field, else the average-power field (or
 * nvmlDeviceGetPowerUsage, a one-second average on recent drivers). */
#include "calib/nvml.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvml_ret;
typedef void *nvml_dev;

typedef union {
    double dVal;
    int siVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    signed long long sllVal;
    unsigned short usVal;
} nvml_value;

typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp;
    long long latencyUsec;
    int valueType;
    nvml_ret nvmlReturn;
    nvml_value value;
} nvml_field;

#define NVML_FI_DEV_POWER_AVERAGE 185
#define NVML_FI_DEV_POWER_INSTANT 186
#define NVML_VALUE_TYPE_DOUBLE 0
#define NVML_VALUE_TYPE_UNSIGNED_INT 1
#define NVML_VALUE_TYPE_UNSIGNED_LONG 2
#define NVML_VALUE_TYPE_UNSIGNED_LONG_LONG 3
#define NVML_VALUE_TYPE_SIGNED_LONG_LONG 4
#define NVML_VALUE_TYPE_SIGNED_INT 5
#define NVML_CLOCK_SM 1
#define NVML_CLOCK_MEM 2
#define NVML_TEMPERATURE_GPU 0

struct calib_nvml {
    void *lib;
    char path[CALIB_NVML_PATH_MAX];
    nvml_dev dev;
    calib_power_method method;
    nvml_ret (*shutdown)(void);
    nvml_ret (*energy)(nvml_dev, unsigned long long *);
    nvml_ret (*usage)(nvml_dev, unsigned int *);
    nvml_ret (*fields)(nvml_dev, int, nvml_field *);
    nvml_ret (*clock)(nvml_dev, int, unsigned int *);
    nvml_ret (*max_clock)(nvml_dev, int, unsigned int *);
    nvml_ret (*temp)(nvml_dev, int, unsigned int *);
    nvml_ret (*limit)(nvml_dev, unsigned int *);
    nvml_ret (*enforced)(nvml_dev, unsigned int *);
    nvml_ret (*reasons)(nvml_dev, unsigned long long *);
    nvml_ret (*driver)(char *, unsigned int);
    nvml_ret (*uuid)(nvml_dev, char *, unsigned int);
};

const char *calib_power_method_name(calib_power_method m)
{
    switch (m) {
    case CALIB_POWER_ENERGY_COUNTER: return "total_energy_counter";
    case CALIB_POWER_INSTANT: return "instant_power";
    case CALIB_POWER_AVERAGE: return "average_power";
    default: return "none";
    }
}

/* dlsym into a function pointer without the object-pointer cast warning. */
static void sym(void *lib, const char *name, void *slot)
{
    void *p = dlsym(lib, name);
    memcpy(slot, &p, sizeof p);
}

static int field_w(calib_nvml *n, unsigned int id, double *w)
{
    if (!n->fields)
        return -1;
    nvml_field f;
    memset(&f, 0, sizeof f);
    f.fieldId = id;
    if (n->fields(n->dev, 1, &f) != 0 || f.nvmlReturn != 0)
        return -1;
    double mw;
    switch (f.valueType) {
    case NVML_VALUE_TYPE_DOUBLE: mw = f.value.dVal; break;
    case NVML_VALUE_TYPE_UNSIGNED_INT: mw = f.value.uiVal; break;
    case NVML_VALUE_TYPE_UNSIGNED_LONG: mw = (double)f.value.ulVal; break;
    case NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: mw = (double)f.value.ullVal; break;
    case NVML_VALUE_TYPE_SIGNED_LONG_LONG: mw = (double)f.value.sllVal; break;
    case NVML_VALUE_TYPE_SIGNED_INT: mw = f.value.siVal; break;
    default: return -1;
    }
    if (!(mw > 0))
        return -1;
    *w = mw / 1000.0;   /* power fields are in milliwatts */
    return 0;
}

/* Folders libnvidia-ml.so.1 is found in on Linux GPU machines. */
static const char *const nvml_dirs[] = {
    "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu/nvidia/current", "/usr/local/nvidia/lib64",
    "/usr/local/nvidia/lib", "/run/nvidia/driver/usr/lib/x86_64-linux-gnu",
    "/run/nvidia/driver/usr/lib64", "/usr/lib/wsl/lib", NULL,
};

int calib_nvml_candidates(const char *env_path, char out[][CALIB_NVML_PATH_MAX], int max)
{
    int n = 0;
    if (env_path && *env_path && n < max)
        snprintf(out[n++], CALIB_NVML_PATH_MAX, "%s", env_path);
    if (n < max)
        snprintf(out[n++], CALIB_NVML_PATH_MAX, "libnvidia-ml.so.1");
    for (int i = 0; nvml_dirs[i] && n < max; i++)
        snprintf(out[n++], CALIB_NVML_PATH_MAX, "%s/libnvidia-ml.so.1", nvml_dirs[i]);
    return n;
}

calib_nvml *calib_nvml_open(const char *pci_bus_id, char *why, size_t why_size)
{
    char paths[16][CALIB_NVML_PATH_MAX];
    const char *libs[16];
    int n = calib_nvml_candidates(getenv("SERVESIM_NVML_LIB"), paths, 16);
    for (int i = 0; i < n; i++)
        libs[i] = paths[i];
    return calib_nvml_open_from(pci_bus_id, libs, n, why, why_size);
}

/* Appends "; what" to why (truncating). */
static void why_add(char *why, size_t size, const char *what)
{
    size_t len = strlen(why);
    if (len + 1 < size)
        snprintf(why + len, size - len, "%s%s", len ? "; " : "", what);
}

calib_nvml *calib_nvml_open_from(const char *pci_bus_id, const char *const *libs, int n_libs,
                                 char *why, size_t why_size)
{
    char tried[1024] = "";
    void *lib = NULL;
    const char *path = NULL;
    nvml_ret (*init)(void) = NULL;
    nvml_ret (*by_pci)(const char *, nvml_dev *) = NULL;
    for (int i = 0; i < n_libs && !lib; i++) {
        char what[CALIB_NVML_PATH_MAX + 160];
        lib = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            const char *e = dlerror();
            snprintf(what, sizeof what, "%s: %s", libs[i],
                     e && strstr(e, "No such file") ? "not found" : e ? e : "cannot load");
            why_add(tried, sizeof tried, what);
            continue;
        }
        sym(lib, "nvmlInit_v2", &init);
        nvml_ret st = init ? init() : -1;
        if (st != 0) {
            snprintf(what, sizeof what, "%s: nvmlInit_v2 %s %d", libs[i],
                     init ? "returned" : "missing", st);
            why_add(tried, sizeof tried, what);
            dlclose(lib);
            lib = NULL;
            continue;
        }
        path = libs[i];
    }
    if (!lib) {
        snprintf(why, why_size, "no usable NVML library (tried %d): %s", n_libs, tried);
        return NULL;
    }
    sym(lib, "nvmlDeviceGetHandleByPciBusId_v2", &by_pci);
    calib_nvml *n = calloc(1, sizeof *n);
    if (!n) {
        dlclose(lib);
        return NULL;
    }
    n->lib = lib;
    snprintf(n->path, sizeof n->path, "%s", path);
    sym(lib, "nvmlShutdown", &n->shutdown);
    /* Only the bus id names the measured GPU for sure (NVML's indices
     * ignore CUDA_VISIBLE_DEVICES): without it, no NVML, so no energy
     * rather than another GPU's. */
    if (!(by_pci && pci_bus_id && by_pci(pci_bus_id, &n->dev) == 0)) {
        snprintf(why, why_size, "%s: no NVML device for PCI bus id %s", path,
                 pci_bus_id ? pci_bus_id : "?");
        calib_nvml_close(n);
        return NULL;
    }
    sym(lib, "nvmlDeviceGetTotalEnergyConsumption", &n->energy);
    sym(lib, "nvmlDeviceGetPowerUsage", &n->usage);
    sym(lib, "nvmlDeviceGetFieldValues", &n->fields);
    sym(lib, "nvmlDeviceGetClockInfo", &n->clock);
    sym(lib, "nvmlDeviceGetMaxClockInfo", &n->max_clock);
    sym(lib, "nvmlDeviceGetTemperature", &n->temp);
    sym(lib, "nvmlDeviceGetPowerManagementLimit", &n->limit);
    sym(lib, "nvmlDeviceGetEnforcedPowerLimit", &n->enforced);
    sym(lib, "nvmlDeviceGetCurrentClocksEventReasons", &n->reasons);
    if (!n->reasons)
        sym(lib, "nvmlDeviceGetCurrentClocksThrottleReasons", &n->reasons);
    sym(lib, "nvmlSystemGetDriverVersion", &n->driver);
    sym(lib, "nvmlDeviceGetUUID", &n->uuid);
    unsigned long long mj = 0;
    double w;
    if (n->energy && n->energy(n->dev, &mj) == 0 && mj > 0)
        n->method = CALIB_POWER_ENERGY_COUNTER;
    else if (field_w(n, NVML_FI_DEV_POWER_INSTANT, &w) == 0)
        n->method = CALIB_POWER_INSTANT;
    else if (calib_nvml_power_w(n, CALIB_POWER_AVERAGE, &w) == 0)
        n->method = CALIB_POWER_AVERAGE;
    else
        n->method = CALIB_POWER_NONE;
    why[0] = 0;
    return n;
}

void calib_nvml_close(calib_nvml *n)
{
    if (!n)
        return;
    if (n->shutdown)
        n->shutdown();
    dlclose(n->lib);
    free(n);
}

const char *calib_nvml_library(const calib_nvml *n)
{
    return n ? n->path : "";
}

calib_power_method calib_nvml_method(const calib_nvml *n)
{
    return n ? n->method : CALIB_POWER_NONE;
}

int calib_nvml_energy_mj(calib_nvml *n, unsigned long long *mj)
{
    return n && n->energy && n->energy(n->dev, mj) == 0 ? 0 : -1;
}

int calib_nvml_power_w(calib_nvml *n, calib_power_method m, double *w)
{
    if (!n)
        return -1;
    if (m == CALIB_POWER_INSTANT)
        return field_w(n, NVML_FI_DEV_POWER_INSTANT, w);
    if (field_w(n, NVML_FI_DEV_POWER_AVERAGE, w) == 0)
        return 0;
    unsigned int mw;
    if (n->usage && n->usage(n->dev, &mw) == 0 && mw > 0) {
        *w = mw / 1000.0;
        return 0;
    }
    return -1;
}

long long calib_nvml_reasons(calib_nvml *n)
{
    unsigned long long r;
    if (n && n->reasons && n->reasons(n->dev, &r) == 0)
        return (long long)r;
    return -1;
}

void calib_nvml_state(calib_nvml *n, calib_gpu_state *s)
{
    calib_gpu_state unknown = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, -1};
    *s = unknown;
    if (!n)
        return;
    unsigned int v;
    if (n->clock && n->clock(n->dev, NVML_CLOCK_SM, &v) == 0)
        s->sm_clock_mhz = v;
    if (n->max_clock && n->max_clock(n->dev, NVML_CLOCK_SM, &v) == 0)
        s->sm_clock_max_mhz = v;
    if (n->clock && n->clock(n->dev, NVML_CLOCK_MEM, &v) == 0)
        s->mem_clock_mhz = v;
    if (n->temp && n->temp(n->dev, NVML_TEMPERATURE_GPU, &v) == 0)
        s->temperature_c = v;
    if (n->limit && n->limit(n->dev, &v) == 0)
        s->power_limit_w = v / 1000.0;
    if (n->enforced && n->enforced(n->dev, &v) == 0)
        s->enforced_power_limit_w = v / 1000.0;
    double w;
    if (calib_nvml_power_w(n, CALIB_POWER_INSTANT, &w) == 0 ||
        calib_nvml_power_w(n, CALIB_POWER_AVERAGE, &w) == 0)
        s->power_w = w;
    s->clocks_event_reasons = calib_nvml_reasons(n);
}

void calib_nvml_driver_version(calib_nvml *n, char *out, size_t size)
{
    out[0] = 0;
    if (n && n->driver && n->driver(out, (unsigned int)size) != 0)
        out[0] = 0;
}

void calib_nvml_uuid(calib_nvml *n, char *out, size_t size)
{
    out[0] = 0;
    if (n && n->uuid && n->uuid(n->dev, out, (unsigned int)size) != 0)
        out[0] = 0;
}
