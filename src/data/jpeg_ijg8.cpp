// The 8-bit build of GDCM's libjpeg (baseline and lossless JPEG of 2..8 bits).
#include <cstdio>  // libjpeg's header uses FILE and size_t without including them
extern "C" {
#include <gdcmjpeg/8/jinclude.h>
#include <gdcmjpeg/8/jpeglib.h>
#include <gdcmjpeg/8/jerror.h>
}
#define MSMEDCAP_JPEG_DECODE decode_jpeg_ijg8
#include "jpeg_ijg.inc"
