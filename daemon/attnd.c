/* attnd -- placeholder until the daemon lands. */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "attnd: not available in this build yet\n");
    return 1;
}
