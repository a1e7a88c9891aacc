/* attn-load -- placeholder until it lands; says so and fails. */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "attn-load: not available in this build yet\n");
    return 1;
}
