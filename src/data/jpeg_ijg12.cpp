// The 12-bit build of GDCM's libjpeg (extended lossy JPEG and lossless JPEG of 9..12 bits).
#include <cstdio>
extern "C" {
#include <gdcmjpeg/12/jinclude.h>
#include <gdcmjpeg/12/jpeglib.h>
#include <gdcmjpeg/12/jerror.h>
}
#define MSMEDCAP_JPEG_DECODE decode_jpeg_ijg12
#include "jpeg_ijg.inc"
