// The ImageNet folder layout: torchvision's class order, extension matching, and the errors for
// every way the tree can be wrong.
#include "../catch.h"
#include "data_test_util.h"

using namespace basin::data;
using basin::data::test::ScratchDir;
using basin::data::test::write_text;

namespace {

void touch(const std::filesystem::path& p) { write_text(p, "x"); }

std::string error_of(const std::filesystem::path& root) {
  try {
    open_imagenet(root);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("jpeg file names match in any letter case", "[data]") {
  for (const char* yes : {"a.JPEG", "b.jpeg", "c.jpg", "d.JPG", "e.JpEg", "n01440764_10026.JPEG"})
    CHECK(is_jpeg_name(yes));
  for (const char* no : {"a.png", "b.jpe", "JPEG", "c.jpeg.txt", "", "jpg."}) CHECK_FALSE(is_jpeg_name(no));
}

TEST_CASE("classes are sorted byte-wise as torchvision ImageFolder sorts them", "[data]") {
  ScratchDir dir("folder");
  for (const char* cls : {"b", "a", "B", "n02", "n01"}) {
    touch(dir.path / "train" / cls / "1.JPEG");
    touch(dir.path / "val" / cls / "1.jpg");
  }
  touch(dir.path / "train" / "a" / "0.jpeg");
  touch(dir.path / "train" / "a" / "notes.txt");
  touch(dir.path / "train" / "a" / "image.png");
  ImageNetLayout layout = open_imagenet(dir.path);
  // Python's sorted() on str: upper case before lower case, digits by code point.
  REQUIRE(layout.train.classes == std::vector<std::string>{"B", "a", "b", "n01", "n02"});
  REQUIRE(layout.val.classes == layout.train.classes);
  REQUIRE(layout.train.samples.size() == 6);
  REQUIRE(layout.val.samples.size() == 5);
  // Class "a" has label 1 and its two images, sorted by name.
  REQUIRE(layout.train.samples[1].label == 1);
  REQUIRE(layout.train.samples[1].path.ends_with("a/0.jpeg"));
  REQUIRE(layout.train.samples[2].path.ends_with("a/1.JPEG"));
  REQUIRE(layout.train.samples[5].label == 4);
}

TEST_CASE("a broken layout names the folder and what was expected", "[data]") {
  ScratchDir dir("broken");
  SECTION("missing root") {
    std::string e = error_of(dir.path / "nope");
    REQUIRE(e.find("nope") != std::string::npos);
    REQUIRE(e.find("does not exist") != std::string::npos);
  }
  SECTION("root is a file") {
    touch(dir.path / "file");
    REQUIRE(error_of(dir.path / "file").find("not a directory") != std::string::npos);
  }
  SECTION("no train directory") {
    touch(dir.path / "val" / "a" / "1.JPEG");
    REQUIRE(error_of(dir.path).find("train/") != std::string::npos);
  }
  SECTION("no val directory") {
    touch(dir.path / "train" / "a" / "1.JPEG");
    REQUIRE(error_of(dir.path).find("val/") != std::string::npos);
    // A run that does not validate reads nothing of val/: absent, a file, or with empty classes.
    REQUIRE(open_imagenet(dir.path, false).val.samples.empty());
    touch(dir.path / "val");
    REQUIRE(open_imagenet(dir.path, false).train.samples.size() == 1);
  }
  SECTION("no classes") {
    std::filesystem::create_directories(dir.path / "train");
    std::filesystem::create_directories(dir.path / "val");
    touch(dir.path / "train" / "stray.JPEG");
    std::string e = error_of(dir.path);
    REQUIRE(e.find("class director") != std::string::npos);
    REQUIRE(e.find("train") != std::string::npos);
  }
  SECTION("val classes differ from train classes") {
    touch(dir.path / "train" / "cat" / "1.JPEG");
    touch(dir.path / "train" / "dog" / "1.JPEG");
    touch(dir.path / "val" / "cat" / "1.JPEG");
    touch(dir.path / "val" / "eel" / "1.JPEG");
    std::string e = error_of(dir.path);
    REQUIRE(e.find("val/") != std::string::npos);
    REQUIRE(e.find("'eel'") != std::string::npos);
  }
  SECTION("classes without any image") {
    std::filesystem::create_directories(dir.path / "train" / "a");
    std::filesystem::create_directories(dir.path / "val" / "a");
    REQUIRE(error_of(dir.path).find("image") != std::string::npos);
  }
  SECTION("one class with nothing to learn from, among classes with images") {
    // As torchvision's ImageFolder: a class without images would still be one of the outputs.
    for (const char* cls : {"a", "b", "c"}) touch(dir.path / "val" / cls / "1.JPEG");
    touch(dir.path / "train" / "a" / "1.JPEG");
    touch(dir.path / "train" / "b" / "1.png");
    touch(dir.path / "train" / "b" / "2.png");
    touch(dir.path / "train" / "c" / "1.JPEG");
    std::string e = error_of(dir.path);
    REQUIRE(e.find((dir.path / "train" / "b").string()) != std::string::npos);
    REQUIRE(e.find("in every class directory, found none (2 other entries)") != std::string::npos);
    // And in val/: a class none of whose images can be checked.
    touch(dir.path / "train" / "b" / "3.jpg");
    std::filesystem::remove(dir.path / "val" / "c" / "1.JPEG");
    REQUIRE(error_of(dir.path).find((dir.path / "val" / "c").string()) != std::string::npos);
  }
}
