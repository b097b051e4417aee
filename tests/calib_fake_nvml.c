/* A fake libnvidia-ml.so.1 for tests/test_calib_nvml.c: the entry points
 * calib/nvml.c looks up, answering for one GPU at PCI bus id
 * FAKE_NVML_BUS_ID with fixed clocks, limits and an energy counter that
 * grows by 1 J per read. Built twice by the Makefile: as is, and with
 * FAKE_NVML_BROKEN, whose nvmlInit_v2 fails the way the CUDA toolkit's stub
 * library does, so that the loader must pass over it. */
#include <string.h>
#include <strings.h>

#define FAKE_NVML_BUS_ID "0000:AB:00.0"

typedef int nvmlReturn_t;
typedef void *nvmlDevice_t;

static int fake_device;
static unsigned long long energy_mj = 1000000;

nvmlReturn_t nvmlInit_v2(void);
nvmlReturn_t nvmlShutdown(void);
nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *bus, nvmlDevice_t *dev);
nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t dev, unsigned long long *mj);
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t dev, unsigned int *mw);
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t dev, int type, unsigned int *mhz);
nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t dev, int type, unsigned int *mhz);
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t dev, int sensor, unsigned int *c);
nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t dev, unsigned int *mw);
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t dev, unsigned int *mw);
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t dev, unsigned long long *r);
nvmlReturn_t nvmlSystemGetDriverVersion(char *out, unsigned int size);
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t dev, char *out, unsigned int size);

nvmlReturn_t nvmlInit_v2(void)
{
#ifdef FAKE_NVML_BROKEN
    return 9;   /* NVML_ERROR_DRIVER_NOT_LOADED */
#else
    return 0;
#endif
}

nvmlReturn_t nvmlShutdown(void)
{
    return 0;
}

nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *bus, nvmlDevice_t *dev)
{
    if (strcasecmp(bus, FAKE_NVML_BUS_ID))
        return 6;   /* NVML_ERROR_NOT_FOUND */
    *dev = &fake_device;
    return 0;
}

static int ours(nvmlDevice_t dev)
{
    return dev == &fake_device;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t dev, unsigned long long *mj)
{
    if (!ours(dev))
        return 2;
    energy_mj += 1000;
    *mj = energy_mj;
    return 0;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t dev, unsigned int *mw)
{
    *mw = 123000;
    return ours(dev) ? 0 : 2;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t dev, int type, unsigned int *mhz)
{
    *mhz = type == 1 ? 1755 : 3201;   /* SM, memory */
    return ours(dev) ? 0 : 2;
}

nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t dev, int type, unsigned int *mhz)
{
    *mhz = type == 1 ? 1980 : 3201;
    return ours(dev) ? 0 : 2;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t dev, int sensor, unsigned int *c)
{
    (void)sensor;
    *c = 41;
    return ours(dev) ? 0 : 2;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t dev, unsigned int *mw)
{
    *mw = 700000;
    return ours(dev) ? 0 : 2;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t dev, unsigned int *mw)
{
    *mw = 650000;
    return ours(dev) ? 0 : 2;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t dev, unsigned long long *r)
{
    *r = 0x4;   /* SW power cap */
    return ours(dev) ? 0 : 2;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *out, unsigned int size)
{
    strncpy(out, "999.99-fake", size);
    out[size - 1] = 0;
    return 0;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t dev, char *out, unsigned int size)
{
    strncpy(out, "GPU-fake-0000", size);
    out[size - 1] = 0;
    return ours(dev) ? 0 : 2;
}
