/*
 * index_params.h -- INDEX_PARAMS, for the Criterion suites whose
 * parameterized tests run over a static table of cases.
 */
#ifndef TEST_INDEX_PARAMS_H
#define TEST_INDEX_PARAMS_H

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stddef.h>

/*
 * Body of a ParameterizedTestParameters: the parameters are indices into
 * a static table. Criterion runs each case in a fresh process (exec, so
 * with ASLR a pointer in a parameter would dangle); an index does not.
 */
#define INDEX_PARAMS(table)                                                    \
	do {                                                                   \
		enum { N_ = sizeof(table) / sizeof((table)[0]) };              \
		static size_t idx_[N_];                                        \
		for (size_t i_ = 0; i_ < N_; i_++)                             \
			idx_[i_] = i_;                                         \
		return cr_make_param_array(size_t, idx_, N_);                  \
	} while (0)

#endif /* TEST_INDEX_PARAMS_H */
