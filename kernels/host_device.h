// MLA_HOST_DEVICE: marks a function callable from host and device code when compiled by nvcc,
// and plain host code otherwise, so the CPU references and the CUDA kernels share one copy of
// small math (the online-softmax state, the sampler's uniform). Header-only.
#ifndef MLASERVE_KERNELS_HOST_DEVICE_H_
#define MLASERVE_KERNELS_HOST_DEVICE_H_

#ifdef __CUDACC__
#define MLA_HOST_DEVICE __host__ __device__
#else
#define MLA_HOST_DEVICE
#endif

#endif  // MLASERVE_KERNELS_HOST_DEVICE_H_
