// Helpers shared by the data layer's tests: scratch directories and small images.
#pragma once

#include <basin/data.h>

#include <turbojpeg.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace basin::data::test {

// A fresh directory under the system temp dir, removed when the test ends. `numbered`: a new
// name each time; without it the same name within a process, for test cases that GENERATE
// paths (Catch keeps a generator's values across the reruns of the test case).
struct ScratchDir {
  std::filesystem::path path;
  explicit ScratchDir(const std::string& name, bool numbered = true) {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("basin-data-" + name + "-" + std::to_string(::getpid()) +
            (numbered ? "-" + std::to_string(counter++) : std::string()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

inline Image flat_image(int width, int height, std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  Image img{width, height, std::vector<std::uint8_t>(static_cast<size_t>(width) * height * 3)};
  for (size_t i = 0; i < img.rgb.size(); i += 3) {
    img.rgb[i] = r;
    img.rgb[i + 1] = g;
    img.rgb[i + 2] = b;
  }
  return img;
}

// A 4:4:4 CMYK JPEG at quality 95 from w x h CMYK pixels (TurboJPEG writes Adobe's inverted
// CMYK, as Photoshop does).
inline std::vector<std::uint8_t> encode_cmyk_jpeg(const std::vector<std::uint8_t>& cmyk, int w, int h) {
  tjhandle tj = tjInitCompress();
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  const int failed = tjCompress2(tj, cmyk.data(), w, 0, h, TJPF_CMYK, &buffer, &size, TJSAMP_444, 95, 0);
  std::vector<std::uint8_t> jpeg;
  if (!failed) jpeg.assign(buffer, buffer + size);
  tjFree(buffer);
  tjDestroy(tj);
  if (failed) throw std::runtime_error("tjCompress2 failed on a CMYK test image");
  return jpeg;
}

inline void write_file(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace basin::data::test
