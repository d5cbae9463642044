#pragma once
// A small reader and writer of the safetensors format (huggingface/safetensors):
//   8 bytes   N, the header's length, unsigned 64-bit little-endian
//   N bytes   a JSON object: {"NAME": {"dtype": "F32", "shape": [..],
//             "data_offsets": [begin, end]}, ..., "__metadata__": {"key": "text"}}
//             (padded with spaces to a multiple of 8, which the format allows)
//   the data  every tensor's raw little-endian bytes, offsets counted from
//             the end of the header, contiguous, in header order
// Our own rather than a library: the format is a page long, and PyTorch,
// JAX and the `safetensors` package read what this writes. Only the dtypes
// livsearch uses are known (F32 weights and logits, I32/I64 tokens).
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace livs::exports {

enum class Dtype { f32, i32, i64 };
const char* to_string(Dtype dtype);  // "F32", "I32", "I64" as the format spells them
int dtype_bytes(Dtype dtype);

struct Tensor {
  std::string name;
  Dtype dtype = Dtype::f32;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;  // numel() * dtype_bytes(dtype), little-endian
  int64_t numel() const;
};

Tensor f32_tensor(std::string name, std::vector<int64_t> shape, const std::vector<float>& values);
Tensor i32_tensor(std::string name, std::vector<int64_t> shape, const std::vector<int32_t>& values);
// The values of an F32 tensor (std::logic_error for another dtype).
std::vector<float> f32_values(const Tensor& tensor);

struct Safetensors {
  std::vector<Tensor> tensors;                  // in the file's data order
  std::map<std::string, std::string> metadata;  // "__metadata__"
  const Tensor* find(const std::string& name) const;
};

// Writes atomically (a temporary file renamed over `path`); names must be
// unique and sizes consistent (std::invalid_argument), a write failure is an
// InputError naming the file.
void write_safetensors(const std::filesystem::path& path, const std::vector<Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Reads and checks a whole file: header length within the file, valid JSON,
// every entry's dtype, shape and offsets consistent and inside the data. Any
// problem is an InputError naming the file and the tensor.
Safetensors read_safetensors(const std::filesystem::path& path);

}  // namespace livs::exports
