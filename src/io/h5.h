// Small RAII layer over the parallel HDF5 C API (1.10, numbered calls): every handle closes itself,
// every call is checked with MIRA_CHECK_HDF5. It encodes the collective rules of parallel HDF5 so
// callers cannot break them by accident:
//   - metadata-changing calls (create file/group/dataset/attribute, attribute writes) are made by
//     every rank with the same arguments - callers pass values that are identical on all ranks;
//   - every rank calls every H5Dwrite/H5Dread; a rank with nothing to move selects none
//     (H5Sselect_none) instead of skipping the call;
//   - memory type == file type (native types on both sides), so no conversion breaks collectivity;
//   - after every collective transfer the actual I/O mode is checked (h5_check_collective) and a
//     transfer that fell back to independent I/O throws.
#pragma once
#include <hdf5.h>
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/check_hdf5.h"

namespace mira {

// Copies HDF5's current error stack into the text h5_last_error() returns, then clears it.
void h5_capture_error_stack();
// Passes an HDF5 return value through, capturing the error stack when it signals failure.
template <typename T>
T h5_note_failure(T rc) {
  if (rc < 0) h5_capture_error_stack();
  return rc;
}

}  // namespace mira

// Every HDF5 call of this layer: MIRA_CHECK_HDF5, with HDF5's own error text kept for messages.
#define MIRA_H5(call) MIRA_CHECK_HDF5(::mira::h5_note_failure(call))

namespace mira {

// Owns one hid_t and the H5*close function that releases it. Move-only.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  H5Handle(H5Handle&& other) noexcept { *this = std::move(other); }
  H5Handle& operator=(H5Handle&& other) noexcept;
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  ~H5Handle() { reset(); }
  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now; a failing close throws (destructors only warn, they must not throw).
  void close();

 private:
  void reset() noexcept;
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// Property lists with the settings the checkpoint needs.
class PropList : public H5Handle {
 public:
  using H5Handle::H5Handle;
  // MPI-IO file access on `comm`, collective metadata reads and writes, file-format bounds
  // [1.8, 1.10] (checksummed superblock v2 and object headers), file locking off where the file
  // system does not support it.
  static PropList file_access_mpio(MPI_Comm comm);
  // Serial (sec2) access with the same format bounds; used by one rank to validate a file.
  static PropList file_access_serial();
  // Collective data transfer (H5FD_MPIO_COLLECTIVE).
  static PropList transfer_collective();
  // Contiguous dataset, space allocated at creation, never filled (every byte gets written), no
  // modification times (identical state gives identical files).
  static PropList dataset_create();
};

// A dataspace: simple (dims) or scalar, plus selections.
class Dataspace : public H5Handle {
 public:
  using H5Handle::H5Handle;
  static Dataspace simple(const std::vector<hsize_t>& dims);
  static Dataspace scalar();
  std::vector<hsize_t> dims() const;
  hsize_t npoints() const;
  void select_none();
  void select_all();
  // Selects whole rows (indices along axis 0, strictly increasing); consecutive rows are merged
  // into one block. An empty list selects none.
  void select_rows(const std::vector<hsize_t>& rows);
};

class Group;

class File : public H5Handle {
 public:
  using H5Handle::H5Handle;
  // Collective on fapl's communicator when fapl is MPI-IO.
  static File create(const std::string& path, const PropList& fapl);
  static File open_read(const std::string& path, const PropList& fapl);
  Group root() const;
  std::string path() const { return path_; }

 private:
  std::string path_;
};

class Group : public H5Handle {
 public:
  using H5Handle::H5Handle;
  static Group create(hid_t parent, const std::string& name);
  static Group open(hid_t parent, const std::string& name);
};

// True when `parent` has a link `name` (one path component).
bool h5_link_exists(hid_t parent, const std::string& name);

class Dataset : public H5Handle {
 public:
  using H5Handle::H5Handle;
  static Dataset create(hid_t parent, const std::string& name, hid_t type, const std::vector<hsize_t>& dims);
  static Dataset open(hid_t parent, const std::string& name);
  Dataspace space() const;
  std::vector<hsize_t> dims() const { return space().dims(); }
  // True when the stored element type is exactly `type` (class, size, byte order, sign).
  bool has_type(hid_t type) const;
  // Byte offset of the contiguous data in the file (HADDR_UNDEF when not allocated).
  haddr_t file_offset() const;
};

// Native element type of T (float, double, int64_t, uint64_t, uint32_t).
template <typename T> hid_t h5_native_type();
template <> inline hid_t h5_native_type<float>() { return H5T_NATIVE_FLOAT; }
template <> inline hid_t h5_native_type<double>() { return H5T_NATIVE_DOUBLE; }
template <> inline hid_t h5_native_type<int64_t>() { return H5T_NATIVE_INT64; }
template <> inline hid_t h5_native_type<uint64_t>() { return H5T_NATIVE_UINT64; }
template <> inline hid_t h5_native_type<uint32_t>() { return H5T_NATIVE_UINT32; }

// Collective transfers (every rank of the file's communicator calls them). A dataset with no
// elements has no storage: the call returns without a transfer on every rank alike.
// Rows `rows` (axis 0, strictly increasing) of `dset`, packed in that order in `buf`. `comm` is
// the file's communicator: a rank moves at most h5_max_transfer_bytes() per call, so ranks agree
// on the number of calls first (ranks with fewer or no rows select none in the extra calls).
void h5_write_rows(MPI_Comm comm, const Dataset& dset, hid_t type, const std::vector<hsize_t>& rows,
                   const void* buf, const std::string& what);
void h5_read_rows(MPI_Comm comm, const Dataset& dset, hid_t type, const std::vector<hsize_t>& rows, void* buf,
                  const std::string& what);
// The same with every row in its own buffer (bufs[i] holds row rows[i]; e.g. one client's slice in
// its own vector), so that nothing is packed or staged. Rows whose buffers follow each other in
// memory move in one call (h5_write_rows is the case where all do); otherwise one call per row.
// Ranks agree on the number of calls as above.
void h5_write_row_buffers(MPI_Comm comm, const Dataset& dset, hid_t type, const std::vector<hsize_t>& rows,
                          const std::vector<const void*>& bufs, const std::string& what);
void h5_read_row_buffers(MPI_Comm comm, const Dataset& dset, hid_t type, const std::vector<hsize_t>& rows,
                         const std::vector<void*>& bufs, const std::string& what);
// Per-rank bytes per H5Dwrite/H5Dread of the row transfers (default 1 GiB, below MPI-IO's int
// counts). Tests lower it to exercise batching.
void h5_set_max_transfer_bytes(size_t bytes);
size_t h5_max_transfer_bytes();
// The whole dataset from `buf` on ranks with `writes` true (one rank), none elsewhere; batched
// along axis 0 like the row transfers.
void h5_write_whole(MPI_Comm comm, const Dataset& dset, hid_t type, bool writes, const void* buf,
                    const std::string& what);
// The whole dataset into `buf` on every rank.
void h5_read_whole(MPI_Comm comm, const Dataset& dset, hid_t type, void* buf, const std::string& what);
// Throws InternalError naming `what` unless the last transfer on `dxpl` went collective on this
// rank and on all ranks (H5Pget_mpio_actual_io_mode, H5Pget_mpio_no_collective_cause == 0).
void h5_check_collective(const PropList& dxpl, const std::string& what);

// Attributes (metadata: in parallel, every rank writes the same value).
void h5_attr_write_string(hid_t obj, const std::string& name, const std::string& value);
void h5_attr_write_int64(hid_t obj, const std::string& name, int64_t value);
void h5_attr_write_uint32(hid_t obj, const std::string& name, uint32_t value);
bool h5_attr_exists(hid_t obj, const std::string& name);
// Reads throw UserError naming the attribute when it is missing or of another type.
std::string h5_attr_read_string(hid_t obj, const std::string& name);
int64_t h5_attr_read_int64(hid_t obj, const std::string& name);
uint32_t h5_attr_read_uint32(hid_t obj, const std::string& name);

// While alive, HDF5 prints nothing on failure (the automatic error printer is off); the error
// stack of the last failed MIRA_H5 call is kept as text (h5_last_error) so that callers can put it
// into a one-line message. Restores the previous printer when destroyed.
class H5ErrorCapture {
 public:
  H5ErrorCapture();
  ~H5ErrorCapture();
  H5ErrorCapture(const H5ErrorCapture&) = delete;
  H5ErrorCapture& operator=(const H5ErrorCapture&) = delete;

 private:
  H5E_auto2_t old_func_ = nullptr;
  void* old_data_ = nullptr;
};
// The innermost descriptions of the last captured HDF5 failure ("" when none).
std::string h5_last_error();
void h5_clear_last_error();

// Names of the links in a group, in name order.
std::vector<std::string> h5_list_links(hid_t group);

// "1.10.8" - the HDF5 library this binary runs with (for provenance strings).
std::string h5_library_version();

}  // namespace mira
