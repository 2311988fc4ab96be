// The ImageNet folder layout: root/{train,val}/<class>/<image>.JPEG, scanned the way
// torchvision's ImageFolder does (class index = position of the directory name in byte-wise
// sorted order), so labels agree with a PyTorch run on the same tree. Errors name the folder and
// what was expected there.
#include <basin/data.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <system_error>

namespace basin::data {

InputError::InputError(std::string origin_, std::string field_, std::string expected_)
    : std::runtime_error(origin_ + (field_.empty() ? "" : ": " + field_) + ": expected " + expected_),
      origin(std::move(origin_)),
      field(std::move(field_)),
      expected(std::move(expected_)) {}

namespace fs = std::filesystem;

bool is_jpeg_name(std::string_view filename) {
  size_t dot = filename.rfind('.');
  if (dot == std::string_view::npos) return false;
  std::string ext(filename.substr(dot + 1));
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == "jpeg" || ext == "jpg";
}

ImageFolder scan_image_folder(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw InputError(dir.string(), "", "a directory (" +
                                           std::string(fs::exists(dir, ec) ? "it is not one" : "it does not exist") +
                                           ")");
  ImageFolder folder;
  folder.dir = dir;
  fs::directory_iterator it(dir, ec);
  if (ec) throw InputError(dir.string(), "", "a readable directory: " + ec.message());
  for (const fs::directory_entry& e : it) {
    if (e.is_directory(ec)) folder.classes.push_back(e.path().filename().string());
  }
  if (folder.classes.empty())
    throw InputError(dir.string(), "class directories",
                     "at least one class directory (<class>/*.JPEG), found none");
  std::sort(folder.classes.begin(), folder.classes.end());
  for (size_t label = 0; label < folder.classes.size(); ++label) {
    fs::path class_dir = dir / folder.classes[label];
    std::vector<std::string> files;
    fs::directory_iterator files_it(class_dir, ec);
    if (ec) throw InputError(class_dir.string(), "", "a readable directory: " + ec.message());
    long long others = 0;
    for (const fs::directory_entry& e : files_it) {
      std::string name = e.path().filename().string();
      if (is_jpeg_name(name) && !e.is_directory(ec)) files.push_back(e.path().string());
      else ++others;
    }
    // As torchvision's ImageFolder refuses it: a class with nothing to learn from would still
    // be one of the model's outputs, and its validation images all wrong.
    if (files.empty())
      throw InputError(class_dir.string(), "",
                       "JPEG images (.JPEG, .jpg, .jpeg) in every class directory, found none" +
                           (others ? " (" + std::to_string(others) + " other entr" + (others == 1 ? "y" : "ies") + ")"
                                   : std::string()));
    std::sort(files.begin(), files.end());
    for (std::string& f : files) folder.samples.push_back({std::move(f), static_cast<int>(label)});
  }
  return folder;
}

ImageNetLayout open_imagenet(const fs::path& root, bool with_val) {
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    throw InputError(root.string(), "", "an ImageNet-layout root directory with train/ and val/ (" +
                                            std::string(fs::exists(root, ec) ? "it is not a directory"
                                                                             : "it does not exist") +
                                            ")");
  for (const char* split : {"train", "val"}) {
    if (!with_val && std::string_view(split) == "val") continue;  // not read: whatever is there
    if (!fs::is_directory(root / split, ec))
      throw InputError(root.string(), std::string(split) + "/",
                       "a " + std::string(split) + "/ directory of class folders, found none");
  }
  ImageNetLayout layout{root, scan_image_folder(root / "train"),
                        with_val ? scan_image_folder(root / "val") : ImageFolder{}};
  if (with_val && layout.val.classes != layout.train.classes) {
    std::set<std::string> train(layout.train.classes.begin(), layout.train.classes.end());
    std::set<std::string> val(layout.val.classes.begin(), layout.val.classes.end());
    std::string detail;
    for (const std::string& c : val)
      if (!train.count(c)) { detail = "val/ has class '" + c + "' that train/ lacks"; break; }
    if (detail.empty())
      for (const std::string& c : train)
        if (!val.count(c)) { detail = "train/ has class '" + c + "' that val/ lacks"; break; }
    throw InputError(root.string(), "val/",
                     "the same class directories as train/ (" + std::to_string(train.size()) +
                         " in train/, " + std::to_string(val.size()) + " in val/; " + detail + ")");
  }
  if (layout.train.samples.empty())
    throw InputError(root.string(), "train/", "at least one .JPEG/.jpg/.jpeg image, found none");
  return layout;
}

}  // namespace basin::data
