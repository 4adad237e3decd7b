// RE2 behind rx.h. The only C++ in Legate: kept to what the C API needs, and no exception
// crosses into C (allocation failure aborts, as xmalloc does).
#include "rx.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include <re2/re2.h>

struct rx {
    re2::RE2 re;
    rx(const char *pattern, const re2::RE2::Options &o) : re(pattern, o)
    {
    }
};

extern "C" int rx_compile(const char *pattern, unsigned flags, struct rx **out, char *err,
                          size_t errlen)
{
    try {
        re2::RE2::Options o;
        o.set_log_errors(false); // errors travel back to the caller, not to stderr
        o.set_case_sensitive((flags & RX_ICASE) == 0);
        rx *r = new rx(pattern, o);
        if (!r->re.ok()) {
            std::snprintf(err, errlen, "%s", r->re.error().c_str());
            delete r;
            *out = nullptr;
            return -EINVAL;
        }
        *out = r;
        return 0;
    } catch (const std::bad_alloc &) {
        std::abort();
    }
}

extern "C" void rx_free(struct rx *re)
{
    delete re;
}

extern "C" bool rx_full_match(const struct rx *re, const char *s, size_t n)
{
    return re2::RE2::FullMatch(re2::StringPiece(s, n), re->re);
}

extern "C" int rx_check_substitution(const struct rx *re, const char *sub, char *err, size_t errlen)
{
    try {
        std::string why;
        if (re->re.CheckRewriteString(sub, &why))
            return 0;
        std::snprintf(err, errlen, "%s", why.c_str());
        return -EINVAL;
    } catch (const std::bad_alloc &) {
        std::abort();
    }
}

extern "C" long rx_replace_all(const struct rx *re, const char *sub, const char *s, size_t n,
                               char *out, size_t outlen)
{
    try {
        std::string str(s, n);
        re2::RE2::GlobalReplace(&str, re->re, sub);
        if (str.size() > outlen || str.size() > 0x7fffffffu)
            return -ENOSPC;
        std::memcpy(out, str.data(), str.size());
        return static_cast<long>(str.size());
    } catch (const std::bad_alloc &) {
        std::abort();
    }
}
