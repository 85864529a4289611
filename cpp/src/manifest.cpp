#include "manifest.hpp"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>

#include "fastsam/error.hpp"
#include "json.hpp"
#include "sha256.hpp"

namespace fastsam::detail {
namespace {

// The largest image size the runtime accepts (4x SAM's 1024); sam-export writes multiples of 16.
constexpr int kMaxImageSize = 4096;
constexpr int kImageSizeMultiple = 16;

bool is_whole(double v, double lo, double hi) { return v >= lo && v <= hi && v == static_cast<double>(static_cast<int64_t>(v)); }

std::vector<TensorSpec> read_specs(const json::Value& list, const std::string& where) {
  if (!list.is_array()) throw Error(ErrorCode::kModelFiles, where + " must be a list");
  std::vector<TensorSpec> specs;
  for (const json::Value& item : list.array) {
    const json::Value* name = item.find("name");
    if (name == nullptr || !name->is_string()) throw Error(ErrorCode::kModelFiles, where + ": entry without a 'name'");
    TensorSpec spec;
    spec.name = name->string;
    if (const json::Value* dtype = item.find("dtype"); dtype && dtype->is_string()) spec.dtype = dtype->string;
    if (const json::Value* shape = item.find("shape"); shape && shape->is_array()) {
      for (const json::Value& d : shape->array) {
        // A dimension is a whole number >= -1 (-1 or a name: dynamic); anything else would overflow the cast.
        if (!d.is_number()) {
          spec.shape.push_back(-1);
        } else if (is_whole(d.number, -1.0, 9.0e15)) {
          spec.shape.push_back(static_cast<int64_t>(d.number));
        } else {
          throw Error(ErrorCode::kModelFiles, where + ": shape of '" + spec.name + "' has an invalid dimension");
        }
      }
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

bool is_hex_digest(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// "variants": {"fp16": {"encoder": "encoder_fp16", "decoder": "decoder", ...}, ...}; every key must be a model.
void read_variants(const json::Value& variants, const std::string& path, Manifest& m) {
  if (!variants.is_object()) throw Error(ErrorCode::kModelFiles, path + ": 'variants' must be an object");
  for (const auto& [precision, roles] : variants.object) {
    if (!roles.is_object()) throw Error(ErrorCode::kModelFiles, path + ": variants." + precision + " must be an object");
    for (const auto& [role, key] : roles.object) {
      const std::string where = path + ": variants." + precision + "." + role;
      if (!key.is_string()) throw Error(ErrorCode::kModelFiles, where + " must be a model key");
      if (!m.has(key.string)) throw Error(ErrorCode::kModelFiles, where + " names '" + key.string + "', not in 'models'");
      m.variants[precision][role] = key.string;
    }
  }
}

const std::string* string_at(const json::Value& object, const char* name) {
  const json::Value* v = object.find(name);
  return v && v->is_string() ? &v->string : nullptr;
}

// "tensorrt": {"cache_dir": "tensorrt_cache", "fp16": true, "profiles": {key: {"min": .., "opt": .., "max": ..}}}
void read_tensorrt(const json::Value& trt, const std::string& path, Manifest& m) {
  const std::string* dir = string_at(trt, "cache_dir");
  if (dir == nullptr || dir->empty() || dir->find("..") != std::string::npos || dir->front() == '/') {
    throw Error(ErrorCode::kModelFiles, path + ": tensorrt.cache_dir must be a folder name inside the model directory");
  }
  m.tensorrt.cache_dir = m.model_dir + "/" + *dir;
  if (const json::Value* fp16 = trt.find("fp16"); fp16 && fp16->type == json::Value::Type::kBool) m.tensorrt.fp16 = fp16->boolean;
  const json::Value* profiles = trt.find("profiles");
  if (profiles == nullptr || !profiles->is_object()) return;
  for (const auto& [key, profile] : profiles->object) {
    auto entry = m.models.find(key);
    if (entry == m.models.end()) continue;  // a profile of a model the manifest does not list: nothing to apply
    const std::string *lo = string_at(profile, "min"), *opt = string_at(profile, "opt"), *hi = string_at(profile, "max");
    if (!lo || !opt || !hi) throw Error(ErrorCode::kModelFiles, path + ": tensorrt.profiles." + key + " needs min, opt and max");
    entry->second.trt_profile_min = *lo;
    entry->second.trt_profile_opt = *opt;
    entry->second.trt_profile_max = *hi;
  }
}

}  // namespace

const ModelEntry& Manifest::model(const std::string& key) const {
  auto it = models.find(key);
  if (it != models.end()) return it->second;
  std::string known;
  for (const auto& [k, v] : models) known += (known.empty() ? "" : ", ") + k;
  throw Error(ErrorCode::kModelFiles, "manifest.json in " + model_dir + " has no model '" + key +
                                          "' (models: " + (known.empty() ? "none" : known) + ")");
}

namespace {

std::string export_flag(const std::string& precision) {
  if (precision == "int8") return "sam-export --quantize";
  if (precision == "fp16") return "sam-export --fp16";
  return "sam-export";
}

}  // namespace

const ModelEntry* Manifest::for_role(const std::string& precision, const std::string& role) const {
  if (variants.empty()) {
    // Exports without "variants": the split decoder served fp32 only, every other role had a suffixed key.
    const bool split = role == "decoder_head" || role == "decoder_masks";
    const std::string key = precision == "fp32" ? role : role + "_" + precision;
    if (role == "encoder" && !has(key)) {
      throw Error(ErrorCode::kModelFiles, "manifest.json in " + model_dir + " has no " + precision + " model '" + key +
                                              "' (an export without 'variants'); re-export with " + export_flag(precision));
    }
    if (split && precision != "fp32") return nullptr;
    return has(key) ? &models.at(key) : nullptr;
  }
  auto variant = variants.find(precision);
  if (variant == variants.end()) {
    std::string known;
    for (const auto& [p, roles] : variants) known += (known.empty() ? "" : ", ") + p;
    throw Error(ErrorCode::kModelFiles, "manifest.json in " + model_dir + " has no '" + precision +
                                            "' variant (variants: " + known + "); re-export with " + export_flag(precision));
  }
  auto key = variant->second.find(role);
  return key == variant->second.end() ? nullptr : &model(key->second);
}

Manifest load_manifest(const std::string& model_dir) {
  const std::string path = model_dir + "/manifest.json";
  std::ifstream in(path);
  if (!in) {
    std::ifstream dir_probe(model_dir);
    throw Error(ErrorCode::kFileNotFound, (dir_probe ? "manifest.json not found: " : "model directory not found: ") +
                                              (dir_probe ? path : model_dir) + " (write it with sam-export)");
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_manifest(buffer.str(), model_dir);
}

Manifest parse_manifest(const std::string& text, const std::string& model_dir) {
  const std::string path = model_dir + "/manifest.json";
  json::Value root;
  try {
    root = json::parse(text);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kModelFiles, path + ": " + e.what());
  }
  if (!root.is_object()) throw Error(ErrorCode::kModelFiles, path + ": top level must be an object");
  Manifest m;
  m.model_dir = model_dir;
  if (const json::Value* v = root.find("model_type"); v && v->is_string()) m.model_type = v->string;
  if (const json::Value* v = root.find("image_size"); v && v->is_number()) {
    // Range-checked before the cast (a double beyond int is undefined behaviour; found by cpp/fuzz).
    if (!is_whole(v->number, kImageSizeMultiple, kMaxImageSize) || static_cast<int>(v->number) % kImageSizeMultiple) {
      throw Error(ErrorCode::kModelFiles, path + ": image_size must be a multiple of " +
                                              std::to_string(kImageSizeMultiple) + " in [" +
                                              std::to_string(kImageSizeMultiple) + ", " + std::to_string(kMaxImageSize) + "]");
    }
    m.image_size = static_cast<int>(v->number);
  }
  if (const json::Value* v = root.find("mask_threshold"); v && v->is_number()) {
    if (!(std::fabs(v->number) <= 1e6)) throw Error(ErrorCode::kModelFiles, path + ": mask_threshold must be a finite logit");
    m.mask_threshold = static_cast<float>(v->number);
  }
  const json::Value* models = root.find("models");
  if (models == nullptr || !models->is_object()) throw Error(ErrorCode::kModelFiles, path + ": missing object 'models'");
  for (const auto& [key, entry] : models->object) {
    const json::Value* file = entry.find("file");
    if (file == nullptr || !file->is_string()) {
      throw Error(ErrorCode::kModelFiles, path + ": models." + key + " has no 'file'");
    }
    ModelEntry e;
    e.key = key;
    e.path = file->string.rfind('/', 0) == 0 ? file->string : model_dir + "/" + file->string;
    if (const json::Value* p = entry.find("precision"); p && p->is_string()) e.precision = p->string;
    if (const json::Value* digest = entry.find("sha256")) {
      if (!digest->is_string() || !is_hex_digest(digest->string)) {
        throw Error(ErrorCode::kModelFiles, path + ": models." + key + ".sha256 must be 64 lower-case hex digits");
      }
      e.sha256 = digest->string;
    }
    if (const json::Value* in_specs = entry.find("inputs")) e.inputs = read_specs(*in_specs, path + ": models." + key + ".inputs");
    if (const json::Value* out_specs = entry.find("outputs")) e.outputs = read_specs(*out_specs, path + ": models." + key + ".outputs");
    m.models.emplace(key, std::move(e));
  }
  if (const json::Value* variants = root.find("variants")) read_variants(*variants, path, m);
  if (const json::Value* trt = root.find("tensorrt"); trt && trt->is_object() && trt->find("cache_dir")) {
    read_tensorrt(*trt, path, m);
  }
  return m;
}

void verify_file(const ModelEntry& entry) {
  if (entry.sha256.empty()) return;
  const std::string actual = sha256_file_hex(entry.path);
  if (actual != entry.sha256) {
    throw Error(ErrorCode::kModelFiles, entry.path + " does not match manifest.json: sha256 expected " + entry.sha256 +
                                            ", actual " + actual +
                                            " (the file is damaged or was replaced after export); re-run sam-export to "
                                            "rewrite the directory");
  }
}

}  // namespace fastsam::detail
