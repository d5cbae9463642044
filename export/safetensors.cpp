#include "export/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>

#include "common/input_error.hpp"
#include "common/json_reader.hpp"

namespace livs::exports {

// The format is little-endian and so are the machines livsearch runs on; the
// bytes are copied as they are.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;  // the reference implementation's limit

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool dtype_from_string(const std::string& text, Dtype& out) {
  for (Dtype d : {Dtype::f32, Dtype::i32, Dtype::i64})
    if (text == to_string(d)) {
      out = d;
      return true;
    }
  return false;
}

template <typename T>
Tensor tensor_of(std::string name, Dtype dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  Tensor t{std::move(name), dtype, std::move(shape), {}};
  if (t.numel() != int64_t(values.size()))
    throw std::invalid_argument("tensor " + t.name + ": shape " + shape_text(t.shape) + " holds " +
                                std::to_string(t.numel()) + " values, got " + std::to_string(values.size()));
  t.bytes.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

}  // namespace

const char* to_string(Dtype dtype) {
  switch (dtype) {
    case Dtype::f32:
      return "F32";
    case Dtype::i32:
      return "I32";
    case Dtype::i64:
      return "I64";
  }
  return "?";
}

int dtype_bytes(Dtype dtype) { return dtype == Dtype::i64 ? 8 : 4; }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor f32_tensor(std::string name, std::vector<int64_t> shape, const std::vector<float>& values) {
  return tensor_of(std::move(name), Dtype::f32, std::move(shape), values);
}

Tensor i32_tensor(std::string name, std::vector<int64_t> shape, const std::vector<int32_t>& values) {
  return tensor_of(std::move(name), Dtype::i32, std::move(shape), values);
}

std::vector<float> f32_values(const Tensor& tensor) {
  if (tensor.dtype != Dtype::f32)
    throw std::logic_error("tensor " + tensor.name + " is " + to_string(tensor.dtype) + ", not F32");
  std::vector<float> out(tensor.bytes.size() / sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), tensor.bytes.data(), tensor.bytes.size());
  return out;
}

const Tensor* Safetensors::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json m = Json::object();
    for (const auto& [key, value] : metadata) m[key] = value;
    header["__metadata__"] = std::move(m);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !names.insert(t.name).second)
      throw std::invalid_argument("safetensors: tensor name \"" + t.name +
                                  "\" is empty, reserved or repeated");
    for (int64_t d : t.shape)
      if (d < 0) throw std::invalid_argument("safetensors: tensor " + t.name + " has a negative dimension");
    if (uint64_t(t.numel()) * uint64_t(dtype_bytes(t.dtype)) != t.bytes.size())
      throw std::invalid_argument("safetensors: tensor " + t.name + " holds " +
                                  std::to_string(t.bytes.size()) + " bytes, its shape " +
                                  shape_text(t.shape) + " needs " +
                                  std::to_string(t.numel() * dtype_bytes(t.dtype)));
    header[t.name] = {{"dtype", to_string(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // tensors start 8-byte aligned

  std::filesystem::path temporary = path;
  temporary += ".partial";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    const uint64_t length = text.size();
    out.write(reinterpret_cast<const char*>(&length), sizeof(length));
    out.write(text.data(), std::streamsize(text.size()));
    for (const auto& t : tensors)
      out.write(reinterpret_cast<const char*>(t.bytes.data()), std::streamsize(t.bytes.size()));
    out.close();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(temporary, ignored);
      throw InputError(path.string(), "", "cannot write the safetensors file");
    }
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) throw InputError(path.string(), "", "cannot write the safetensors file: " + error.message());
}

Safetensors read_safetensors(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(file, "", "cannot open the safetensors file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 8)
    throw InputError(file, "",
                     "not a safetensors file: " + std::to_string(bytes.size()) +
                         " bytes, fewer than the 8-byte header length");
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  if (header_bytes > kMaxHeaderBytes || header_bytes > bytes.size() - 8)
    throw InputError(file, "",
                     "not a safetensors file: its header length " + std::to_string(header_bytes) +
                         " exceeds the file's " + std::to_string(bytes.size() - 8) + " bytes");
  const Json header = [&] {
    try {
      return Json::parse(bytes.substr(8, header_bytes));
    } catch (const Json::exception&) {
      throw InputError(file, "", "not a safetensors file: its header is not valid JSON");
    }
  }();
  if (!header.is_object())
    throw InputError(file, "", "not a safetensors file: its header is not a JSON object");

  const uint64_t data_begin = 8 + header_bytes, data_bytes = bytes.size() - data_begin;
  Safetensors out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw InputError(file, "/__metadata__", "expected an object of strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) throw InputError(file, "/__metadata__/" + key, "expected a string");
        out.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor " + name;
    auto bad = [&](const std::string& what) { return InputError(file, where, what); };
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      throw bad("expected an object with dtype, shape and data_offsets");
    Tensor t;
    t.name = name;
    if (!entry["dtype"].is_string() || !dtype_from_string(entry["dtype"].get<std::string>(), t.dtype))
      throw bad("dtype " + entry["dtype"].dump() + " is not one livsearch reads (F32, I32, I64)");
    if (!entry["shape"].is_array()) throw bad("expected shape to be an array of sizes");
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned())
        throw bad("expected shape to be an array of sizes, got " + entry["shape"].dump());
      t.shape.push_back(d.get<int64_t>());
    }
    const Json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      throw bad("expected data_offsets [begin, end]");
    const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_bytes)
      throw bad("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] outside the " +
                std::to_string(data_bytes) + " bytes of data");
    if (end - begin != uint64_t(t.numel()) * uint64_t(dtype_bytes(t.dtype)))
      throw bad("holds " + std::to_string(end - begin) + " bytes, its shape " + shape_text(t.shape) + " of " +
                to_string(t.dtype) + " needs " + std::to_string(t.numel() * dtype_bytes(t.dtype)));
    t.bytes.assign(bytes.begin() + std::ptrdiff_t(data_begin + begin),
                   bytes.begin() + std::ptrdiff_t(data_begin + end));
    ranges.push_back({begin, end});
    out.tensors.push_back(std::move(t));
  }
  // The format's rule: the tensors tile the data exactly (no overlap, no hole).
  std::vector<std::size_t> order(ranges.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return ranges[a] < ranges[b]; });
  uint64_t expected = 0;
  for (std::size_t i : order) {
    if (ranges[i].first != expected)
      throw InputError(file, "tensor " + out.tensors[i].name,
                       "its data starts at byte " + std::to_string(ranges[i].first) + ", expected " +
                           std::to_string(expected) +
                           " (tensors must tile the data without gaps or overlap)");
    expected = ranges[i].second;
  }
  if (expected != data_bytes)
    throw InputError(file, "",
                     "the tensors cover " + std::to_string(expected) + " of the " +
                         std::to_string(data_bytes) + " data bytes");
  std::vector<Tensor> sorted;
  for (std::size_t i : order) sorted.push_back(std::move(out.tensors[i]));
  out.tensors = std::move(sorted);
  return out;
}

}  // namespace livs::exports
