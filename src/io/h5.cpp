// Implementation of the HDF5 RAII layer (h5.h).
#include "io/h5.h"

#include <algorithm>
#include <sstream>

#include "runtime/check_hdf5.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace mira {

// ---------------------------------------------------------------- handles

H5Handle& H5Handle::operator=(H5Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = -1;
  }
  return *this;
}

void H5Handle::reset() noexcept {
  if (id_ >= 0 && closer_ && closer_(id_) < 0)
    log_rank(LogLevel::WARN, "HDF5: closing handle %lld failed", (long long)id_);
  id_ = -1;
}

void H5Handle::close() {
  if (id_ < 0) return;
  hid_t id = id_;
  id_ = -1;
  MIRA_H5(closer_(id));
}

// ---------------------------------------------------------------- property lists

namespace {
void set_format_bounds(hid_t fapl) {
  // Low bound 1.8: superblock v2 and v2 object headers carry checksums, so HDF5 refuses a corrupted
  // header instead of reading garbage. High bound 1.10: readable by every HDF5 >= 1.10 (h5py too).
  MIRA_H5(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V110));
  // Lustre/NFS mounts without flock support: lock where possible, carry on where disabled.
  MIRA_H5(H5Pset_file_locking(fapl, true, true));
}
}  // namespace

PropList PropList::file_access_mpio(MPI_Comm comm) {
  PropList p(MIRA_H5(H5Pcreate(H5P_FILE_ACCESS)), H5Pclose);
  MIRA_H5(H5Pset_fapl_mpio(p.id(), comm, MPI_INFO_NULL));
  MIRA_H5(H5Pset_all_coll_metadata_ops(p.id(), true));
  MIRA_H5(H5Pset_coll_metadata_write(p.id(), true));
  set_format_bounds(p.id());
  return p;
}

PropList PropList::file_access_serial() {
  PropList p(MIRA_H5(H5Pcreate(H5P_FILE_ACCESS)), H5Pclose);
  MIRA_H5(H5Pset_fapl_sec2(p.id()));
  set_format_bounds(p.id());
  return p;
}

PropList PropList::transfer_collective() {
  PropList p(MIRA_H5(H5Pcreate(H5P_DATASET_XFER)), H5Pclose);
  MIRA_H5(H5Pset_dxpl_mpio(p.id(), H5FD_MPIO_COLLECTIVE));
  return p;
}

PropList PropList::dataset_create() {
  PropList p(MIRA_H5(H5Pcreate(H5P_DATASET_CREATE)), H5Pclose);
  MIRA_H5(H5Pset_layout(p.id(), H5D_CONTIGUOUS));
  MIRA_H5(H5Pset_alloc_time(p.id(), H5D_ALLOC_TIME_EARLY));
  MIRA_H5(H5Pset_fill_time(p.id(), H5D_FILL_TIME_NEVER));
  // No modification times in object headers: the same state gives the same bytes.
  MIRA_H5(H5Pset_obj_track_times(p.id(), false));
  return p;
}

// ---------------------------------------------------------------- dataspaces

Dataspace Dataspace::simple(const std::vector<hsize_t>& dims) {
  return Dataspace(MIRA_H5(H5Screate_simple((int)dims.size(), dims.data(), nullptr)), H5Sclose);
}

Dataspace Dataspace::scalar() { return Dataspace(MIRA_H5(H5Screate(H5S_SCALAR)), H5Sclose); }

std::vector<hsize_t> Dataspace::dims() const {
  int rank = MIRA_H5(H5Sget_simple_extent_ndims(id()));
  std::vector<hsize_t> d((size_t)rank);
  if (rank > 0) MIRA_H5(H5Sget_simple_extent_dims(id(), d.data(), nullptr));
  return d;
}

void Dataspace::select_none() { MIRA_H5(H5Sselect_none(id())); }
void Dataspace::select_all() { MIRA_H5(H5Sselect_all(id())); }

void Dataspace::select_rows(const std::vector<hsize_t>& rows) {
  select_none();
  std::vector<hsize_t> d = dims();
  MIRA_CHECK(!d.empty(), "select_rows needs a dataspace with at least one axis");
  std::vector<hsize_t> start(d.size(), 0), count = d;
  for (size_t i = 0; i < rows.size();) {
    size_t j = i + 1;
    while (j < rows.size() && rows[j] == rows[j - 1] + 1) ++j;  // merge a run of consecutive rows
    MIRA_CHECK(rows[j - 1] < d[0] && (i == 0 || rows[i] > rows[i - 1]),
               "rows must be increasing and below " + std::to_string(d[0]));
    start[0] = rows[i];
    count[0] = j - i;
    MIRA_H5(H5Sselect_hyperslab(id(), H5S_SELECT_OR, start.data(), nullptr, count.data(), nullptr));
    i = j;
  }
}

// ---------------------------------------------------------------- files, groups, datasets

File File::create(const std::string& path, const PropList& fapl) {
  H5Handle fcpl(MIRA_H5(H5Pcreate(H5P_FILE_CREATE)), H5Pclose);
  MIRA_H5(H5Pset_obj_track_times(fcpl.id(), false));  // the root group too: reproducible bytes
  File f(MIRA_H5(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.id(), fapl.id())), H5Fclose);
  f.path_ = path;
  return f;
}

File File::open_read(const std::string& path, const PropList& fapl) {
  File f(MIRA_H5(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.id())), H5Fclose);
  f.path_ = path;
  return f;
}

Group File::root() const { return Group::open(id(), "/"); }

Group Group::create(hid_t parent, const std::string& name) {
  H5Handle gcpl(MIRA_H5(H5Pcreate(H5P_GROUP_CREATE)), H5Pclose);
  MIRA_H5(H5Pset_obj_track_times(gcpl.id(), false));  // reproducible bytes, as for datasets
  return Group(MIRA_H5(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, gcpl.id(), H5P_DEFAULT)), H5Gclose);
}

Group Group::open(hid_t parent, const std::string& name) {
  return Group(MIRA_H5(H5Gopen2(parent, name.c_str(), H5P_DEFAULT)), H5Gclose);
}

bool h5_link_exists(hid_t parent, const std::string& name) {
  return MIRA_H5(H5Lexists(parent, name.c_str(), H5P_DEFAULT)) > 0;
}

Dataset Dataset::create(hid_t parent, const std::string& name, hid_t type, const std::vector<hsize_t>& dims) {
  Dataspace space = Dataspace::simple(dims);
  PropList dcpl = PropList::dataset_create();
  return Dataset(MIRA_H5(H5Dcreate2(parent, name.c_str(), type, space.id(), H5P_DEFAULT, dcpl.id(),
                                            H5P_DEFAULT)),
                 H5Dclose);
}

Dataset Dataset::open(hid_t parent, const std::string& name) {
  return Dataset(MIRA_H5(H5Dopen2(parent, name.c_str(), H5P_DEFAULT)), H5Dclose);
}

Dataspace Dataset::space() const { return Dataspace(MIRA_H5(H5Dget_space(id())), H5Sclose); }

bool Dataset::has_type(hid_t type) const {
  H5Handle t(MIRA_H5(H5Dget_type(id())), H5Tclose);
  return MIRA_H5(H5Tequal(t.id(), type)) > 0;
}

haddr_t Dataset::file_offset() const { return H5Dget_offset(id()); }

// ---------------------------------------------------------------- collective transfers

namespace {

hsize_t row_elements(const std::vector<hsize_t>& dims) {
  hsize_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) n *= dims[i];
  return n;
}

// HDF5 refuses a null buffer even when nothing is selected; empty std::vectors give null data().
char g_empty_buffer[8];
const void* nonnull(const void* p) { return p ? p : g_empty_buffer; }
void* nonnull(void* p) { return p ? p : g_empty_buffer; }

// A 1-D memory space of n elements, all selected; n == 0 gives one element with none selected.
Dataspace memory_space(hsize_t n) {
  Dataspace m = Dataspace::simple({n > 0 ? n : 1});
  if (n == 0) m.select_none();
  return m;
}

std::string describe_no_collective_cause(uint32_t cause) {
  if (cause == H5D_MPIO_COLLECTIVE) return "none";
  std::string s;
  auto add = [&](uint32_t bit, const char* text) {
    if (cause & bit) s += (s.empty() ? "" : "|") + std::string(text);
  };
  add(H5D_MPIO_SET_INDEPENDENT, "independent transfer requested");
  add(H5D_MPIO_DATATYPE_CONVERSION, "datatype conversion");
  add(H5D_MPIO_DATA_TRANSFORMS, "data transforms");
  add(H5D_MPIO_MPI_OPT_TYPES_ENV_VAR_DISABLED, "MPI derived types disabled");
  add(H5D_MPIO_NOT_SIMPLE_OR_SCALAR_DATASPACES, "not simple or scalar dataspaces");
  add(H5D_MPIO_NOT_CONTIGUOUS_OR_CHUNKED_DATASET, "not contiguous or chunked dataset");
  add(H5D_MPIO_PARALLEL_FILTERED_WRITES_DISABLED, "parallel filtered writes disabled");
  add(H5D_MPIO_ERROR_WHILE_CHECKING_COLLECTIVE_POSSIBLE, "error while checking");
  if (s.empty()) s = "cause bits " + std::to_string(cause);
  return s;
}

}  // namespace

void h5_check_collective(const PropList& dxpl, const std::string& what) {
  H5D_mpio_actual_io_mode_t mode;
  uint32_t local_cause = 0, global_cause = 0;
  MIRA_H5(H5Pget_mpio_actual_io_mode(dxpl.id(), &mode));
  MIRA_H5(H5Pget_mpio_no_collective_cause(dxpl.id(), &local_cause, &global_cause));
  if (local_cause != 0 || global_cause != 0 || mode == H5D_MPIO_NO_COLLECTIVE)
    throw InternalError("HDF5 transfer of " + what + " did not go collective (actual mode " +
                        std::to_string((int)mode) + ", local cause: " + describe_no_collective_cause(local_cause) +
                        ", global cause: " + describe_no_collective_cause(global_cause) + ") " +
                        error_where(__FILE__, __LINE__));
}

namespace {

size_t g_max_transfer_bytes = size_t(1) << 30;  // 1 GiB: MPI-IO counts are int, stay far below 2 GiB

// One collective transfer of `rows` (possibly none) between `buf` and the file.
void transfer_rows_once(const Dataset& dset, hid_t type, const std::vector<hsize_t>& rows, void* buf, bool write,
                        const std::string& what) {
  Dataspace file_space = dset.space();
  file_space.select_rows(rows);
  Dataspace mem = memory_space(rows.size() * row_elements(file_space.dims()));
  PropList dxpl = PropList::transfer_collective();
  if (write)
    MIRA_H5(H5Dwrite(dset.id(), type, mem.id(), file_space.id(), dxpl.id(), nonnull(static_cast<const void*>(buf))));
  else
    MIRA_H5(H5Dread(dset.id(), type, mem.id(), file_space.id(), dxpl.id(), nonnull(buf)));
  h5_check_collective(dxpl, what);
}

// Moves rows[i] from/to bufs[i] (row_bytes each). Consecutive entries whose buffers are adjacent in
// memory form one call of at most max_transfer_bytes per rank; every rank makes the same number of
// calls (the largest count on `comm`), a rank out of rows selects none.
void transfer_row_buffers(MPI_Comm comm, const Dataset& dset, hid_t type, const std::vector<hsize_t>& rows,
                          const std::vector<char*>& bufs, bool write, const std::string& what) {
  MIRA_CHECK(bufs.size() == rows.size(), what + ": " + std::to_string(rows.size()) + " rows but " +
                                             std::to_string(bufs.size()) + " buffers");
  std::vector<hsize_t> dims = dset.dims();
  hsize_t total = 1;
  for (auto d : dims) total *= d;
  if (total == 0) return;  // empty on every rank alike: no storage to move
  const size_t elem_bytes = H5Tget_size(type);  // 0 on failure (unsigned: no MIRA_H5)
  MIRA_CHECK(elem_bytes > 0, "H5Tget_size failed for " + what);
  const size_t row_bytes = (size_t)row_elements(dims) * elem_bytes;
  const size_t per_batch = std::max<size_t>(1, g_max_transfer_bytes / std::max<size_t>(1, row_bytes));
  std::vector<std::pair<size_t, size_t>> runs;  // [first, end) entries moved by one call
  for (size_t i = 0; i < rows.size();) {
    size_t j = i + 1;
    while (j < rows.size() && j - i < per_batch && bufs[j] == bufs[j - 1] + row_bytes) ++j;
    runs.emplace_back(i, j);
    i = j;
  }
  long long local_calls = (long long)runs.size(), calls = 0;
  MIRA_CHECK(MPI_Allreduce(&local_calls, &calls, 1, MPI_LONG_LONG, MPI_MAX, comm) == MPI_SUCCESS,
             "MPI_Allreduce of the transfer count for " + what);
  if (calls == 0) calls = 1;  // nobody has rows: still one collective call with none selected
  for (long long b = 0; b < calls; ++b) {
    if ((size_t)b < runs.size()) {
      const auto [lo, hi] = runs[(size_t)b];
      std::vector<hsize_t> part(rows.begin() + (ptrdiff_t)lo, rows.begin() + (ptrdiff_t)hi);
      transfer_rows_once(dset, type, part, bufs[lo], write, what);
    } else {
      transfer_rows_once(dset, type, {}, nullptr, write, what);
    }
  }
}

// Rows packed in order in one buffer.
void transfer_rows(MPI_Comm comm, const Dataset& dset, hid_t type, const std::vector<hsize_t>& rows, void* buf,
                   bool write, const std::string& what) {
  std::vector<hsize_t> dims = dset.dims();
  const size_t row_bytes = (size_t)row_elements(dims) * H5Tget_size(type);  // a failed size is caught below
  std::vector<char*> bufs(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) bufs[i] = static_cast<char*>(buf) + i * row_bytes;
  transfer_row_buffers(comm, dset, type, rows, bufs, write, what);
}

}  // namespace

void h5_set_max_transfer_bytes(size_t bytes) { g_max_transfer_bytes = std::max<size_t>(1, bytes); }
size_t h5_max_transfer_bytes() { return g_max_transfer_bytes; }

void h5_write_rows(MPI_Comm comm, const Dataset& dset, hid_t type, const std::vector<hsize_t>& rows,
                   const void* buf, const std::string& what) {
  transfer_rows(comm, dset, type, rows, const_cast<void*>(buf), true, what);  // not written to
}

void h5_read_rows(MPI_Comm comm, const Dataset& dset, hid_t type, const std::vector<hsize_t>& rows, void* buf,
                  const std::string& what) {
  transfer_rows(comm, dset, type, rows, buf, false, what);
}

void h5_write_row_buffers(MPI_Comm comm, const Dataset& dset, hid_t type, const std::vector<hsize_t>& rows,
                          const std::vector<const void*>& bufs, const std::string& what) {
  std::vector<char*> p(bufs.size());
  for (size_t i = 0; i < bufs.size(); ++i) p[i] = static_cast<char*>(const_cast<void*>(bufs[i]));  // not written to
  transfer_row_buffers(comm, dset, type, rows, p, true, what);
}

void h5_read_row_buffers(MPI_Comm comm, const Dataset& dset, hid_t type, const std::vector<hsize_t>& rows,
                         const std::vector<void*>& bufs, const std::string& what) {
  std::vector<char*> p(bufs.size());
  for (size_t i = 0; i < bufs.size(); ++i) p[i] = static_cast<char*>(bufs[i]);
  transfer_row_buffers(comm, dset, type, rows, p, false, what);
}

namespace {
std::vector<hsize_t> all_rows(const Dataset& dset) {
  std::vector<hsize_t> dims = dset.dims(), rows;
  MIRA_CHECK(!dims.empty(), "whole-dataset transfers need a simple dataspace with at least one axis");
  for (hsize_t i = 0; i < dims[0]; ++i) rows.push_back(i);
  return rows;
}
}  // namespace

void h5_write_whole(MPI_Comm comm, const Dataset& dset, hid_t type, bool writes, const void* buf,
                    const std::string& what) {
  std::vector<hsize_t> rows = writes ? all_rows(dset) : std::vector<hsize_t>{};
  transfer_rows(comm, dset, type, rows, const_cast<void*>(buf), true, what);  // not written to
}

void h5_read_whole(MPI_Comm comm, const Dataset& dset, hid_t type, void* buf, const std::string& what) {
  transfer_rows(comm, dset, type, all_rows(dset), buf, false, what);
}

// ---------------------------------------------------------------- attributes

namespace {

void attr_write(hid_t obj, const std::string& name, hid_t type, const void* value) {
  Dataspace space = Dataspace::scalar();
  H5Handle attr(MIRA_H5(H5Acreate2(obj, name.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT)),
                H5Aclose);
  MIRA_H5(H5Awrite(attr.id(), type, value));
}

H5Handle attr_open_typed(hid_t obj, const std::string& name, H5T_class_t want_class, const char* want_text) {
  if (MIRA_H5(H5Aexists(obj, name.c_str())) <= 0)
    throw UserError("attribute '" + name + "' is missing");
  H5Handle attr(MIRA_H5(H5Aopen_by_name(obj, ".", name.c_str(), H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
  H5Handle type(MIRA_H5(H5Aget_type(attr.id())), H5Tclose);
  H5Handle space(MIRA_H5(H5Aget_space(attr.id())), H5Sclose);
  if (MIRA_H5(H5Tget_class(type.id())) != want_class ||
      MIRA_H5(H5Sget_simple_extent_npoints(space.id())) != 1)
    throw UserError("attribute '" + name + "' is not a scalar " + want_text);
  return attr;
}

}  // namespace

void h5_attr_write_string(hid_t obj, const std::string& name, const std::string& value) {
  // Fixed-length, NUL-padded, UTF-8: kept in the (checksummed) object header or dense attribute
  // storage, never in the global heap, which carries no checksum. Size >= 1 (HDF5 refuses 0).
  H5Handle type(MIRA_H5(H5Tcopy(H5T_C_S1)), H5Tclose);
  MIRA_H5(H5Tset_size(type.id(), value.empty() ? 1 : value.size()));
  MIRA_H5(H5Tset_strpad(type.id(), H5T_STR_NULLPAD));
  MIRA_H5(H5Tset_cset(type.id(), H5T_CSET_UTF8));
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  attr_write(obj, name, type.id(), padded.data());
}

void h5_attr_write_int64(hid_t obj, const std::string& name, int64_t value) {
  attr_write(obj, name, H5T_NATIVE_INT64, &value);
}

void h5_attr_write_uint32(hid_t obj, const std::string& name, uint32_t value) {
  attr_write(obj, name, H5T_NATIVE_UINT32, &value);
}

bool h5_attr_exists(hid_t obj, const std::string& name) {
  return MIRA_H5(H5Aexists(obj, name.c_str())) > 0;
}

std::string h5_attr_read_string(hid_t obj, const std::string& name) {
  H5Handle attr = attr_open_typed(obj, name, H5T_STRING, "string");
  H5Handle type(MIRA_H5(H5Aget_type(attr.id())), H5Tclose);
  if (MIRA_H5(H5Tis_variable_str(type.id())) > 0)
    throw UserError("attribute '" + name + "' is a variable-length string; this format stores fixed-length ones");
  size_t size = H5Tget_size(type.id());
  std::string value(size, '\0');
  MIRA_H5(H5Aread(attr.id(), type.id(), value.data()));
  auto end = value.find('\0');
  if (end != std::string::npos) value.resize(end);
  return value;
}

int64_t h5_attr_read_int64(hid_t obj, const std::string& name) {
  H5Handle attr = attr_open_typed(obj, name, H5T_INTEGER, "integer");
  int64_t value = 0;
  MIRA_H5(H5Aread(attr.id(), H5T_NATIVE_INT64, &value));
  return value;
}

uint32_t h5_attr_read_uint32(hid_t obj, const std::string& name) {
  H5Handle attr = attr_open_typed(obj, name, H5T_INTEGER, "integer");
  uint32_t value = 0;
  MIRA_H5(H5Aread(attr.id(), H5T_NATIVE_UINT32, &value));
  return value;
}

// ---------------------------------------------------------------- error capture

namespace {

std::string& last_error_text() {
  static std::string text;  // HDF5 here is not thread-safe either: one caller at a time
  return text;
}

herr_t collect_entry(unsigned, const H5E_error2_t* err, void* client) {
  auto* lines = static_cast<std::vector<std::string>*>(client);
  char minor[128] = "";
  H5Eget_msg(err->min_num, nullptr, minor, sizeof(minor));
  std::string line = err->desc ? err->desc : "";
  if (minor[0]) line += std::string(" [") + minor + "]";
  lines->push_back(line);
  return 0;
}

}  // namespace

void h5_capture_error_stack() {
  // Copied out (and cleared) right at the failing call: later calls, such as the closes that run
  // while the exception unwinds, would clear it. Not done through an automatic error handler: with
  // HDF5 1.10.8 an invoked auto handler leaves free-list blocks behind after a failed metadata
  // load, and the library prints "infinite loop closing library" at exit.
  hid_t stack = H5Eget_current_stack();
  if (stack < 0) return;
  std::vector<std::string> lines;
  H5Ewalk2(stack, H5E_WALK_DOWNWARD, collect_entry, &lines);
  H5Eclose_stack(stack);
  // Innermost first: the deepest entries say what was actually wrong ("truncated file", "incorrect
  // metadata checksum"); two are enough for one line.
  std::string text;
  for (size_t i = lines.size(), shown = 0; i-- > 0 && shown < 2; ++shown)
    text += (text.empty() ? "" : "; ") + lines[i];
  last_error_text() = text;
}

H5ErrorCapture::H5ErrorCapture() {
  MIRA_H5(H5Eget_auto2(H5E_DEFAULT, &old_func_, &old_data_));
  MIRA_H5(H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr));
  last_error_text().clear();
}

H5ErrorCapture::~H5ErrorCapture() {
  // HDF5 1.10.8: after a failed metadata load (corrupted or truncated file), library shutdown with
  // an automatic error printer installed loops over leaked free lists and prints "HDF5: infinite
  // loop closing library" at exit. So once a failure was captured here, printing stays off (every
  // call is checked anyway and errors carry HDF5's text via h5_last_error).
  if (last_error_text().empty()) H5Eset_auto2(H5E_DEFAULT, old_func_, old_data_);
}

std::string h5_last_error() { return last_error_text(); }
void h5_clear_last_error() { last_error_text().clear(); }

std::vector<std::string> h5_list_links(hid_t group) {
  H5G_info_t info;
  MIRA_H5(H5Gget_info(group, &info));
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t len = MIRA_H5(H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT));
    std::string name((size_t)len + 1, '\0');
    MIRA_H5(H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT));
    name.resize((size_t)len);
    names.push_back(name);
  }
  return names;
}

hsize_t Dataspace::npoints() const { return (hsize_t)MIRA_H5(H5Sget_simple_extent_npoints(id())); }

std::string h5_library_version() {
  unsigned major = 0, minor = 0, release = 0;
  MIRA_H5(H5get_libversion(&major, &minor, &release));
  std::ostringstream s;
  s << major << '.' << minor << '.' << release;
  return s.str();
}

}  // namespace mira
