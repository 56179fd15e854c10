// HDF5 1.10 C API. Its macros (H5F_ACC_TRUNC, H5T_NATIVE_FLOAT, H5P_DEFAULT, ...) are not visible
// to Swift, so they are re-exported here as inline functions.
#include <hdf5.h>

static inline unsigned squeeze_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline unsigned squeeze_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline hid_t squeeze_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t squeeze_H5S_ALL(void) { return H5S_ALL; }
static inline hid_t squeeze_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t squeeze_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t squeeze_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t squeeze_H5T_C_S1(void) { return H5T_C_S1; }
static inline hid_t squeeze_H5E_DEFAULT(void) { return H5E_DEFAULT; }
