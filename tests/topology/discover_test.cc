#include "../catch.h"
